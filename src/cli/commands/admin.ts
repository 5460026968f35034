/** Client commands that talk to the hub's admin API: tokens, agents, grants, audit, login. */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { hubRequest, jsonOrThrow, fetchPinnedCa } from '../../client/hubHttp.js';
import { dialHub } from '../../tunnel/dialHub.js';
import { defaultContextName, normalisePin, parseHubUrl, resolveClient, writeLogin, type ClientFlags } from '../clientConfig.js';
import { parseFormat, render, type Column } from '../output.js';
import { examples, outputOption } from '../conventions.js';
import { collect, parseLabels } from '../../shared/textLists.js';
import http from 'node:http';
import fs from 'node:fs';
import { describeAuthority } from '../../hub/authority.js';
import type { AgentAuthority } from '../../store/store.js';

type Opts = ClientFlags & { output?: string };

function clientFlags(cmd: Command): Opts {
  return cmd.optsWithGlobals<Opts>();
}

async function call<T>(cmd: Command, method: string, path: string, body?: unknown): Promise<T> {
  const { endpoint, token } = await resolveClient(clientFlags(cmd));
  return jsonOrThrow<T>(await hubRequest(endpoint, method, path, { body, token }));
}

function print<T>(cmd: Command, data: T | T[], columns: Column<T>[]): void {
  process.stdout.write(render(data, parseFormat(clientFlags(cmd).output), columns));
}

function duration(what: string, text: string): string {
  if (parseDuration(text) === undefined) throw new WarrenError('WARREN_E_USAGE', `${what}: "${text}" is not a duration like 30m, 8h, 7d`);
  return text;
}

function ago(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : s < 86400 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

interface AgentRow {
  name: string; connected: boolean; labels: Record<string, string>; clusters: string[]; routes: string[]; version: string | null;
  connectedAt: string | null; lastSeen: string | null; rttMs: number | null; streamsOpen: number; authority: AgentAuthority;
}
const agentColumns: Column<AgentRow>[] = [
  { header: 'NAME', get: (a) => a.name },
  { header: 'CONNECTED', get: (a) => (a.connected ? `yes (${ago(a.connectedAt)})` : `no (seen ${ago(a.lastSeen)} ago)`) },
  { header: 'RTT', get: (a) => (a.rttMs === null ? '-' : `${a.rttMs}ms`) },
  { header: 'STREAMS', get: (a) => a.streamsOpen },
  { header: 'VERSION', get: (a) => a.version },
  { header: 'ROUTES', get: (a) => a.routes },
  { header: 'CLUSTERS', get: (a) => a.clusters },
  { header: 'LABELS', get: (a) => a.labels },
  { header: 'MAY CLAIM', get: (a) => describeAuthority(a.authority) },
];

interface GrantRow { id: string; subject: string; agent: string | null; host: string | null; ports: string | null; cluster: string | null; kubeGroups: string[] }
const grantColumns: Column<GrantRow>[] = [
  { header: 'ID', get: (g) => g.id },
  { header: 'SUBJECT', get: (g) => g.subject },
  { header: 'AGENT', get: (g) => g.agent },
  { header: 'HOST', get: (g) => g.host },
  { header: 'PORTS', get: (g) => g.ports },
  { header: 'CLUSTER', get: (g) => g.cluster },
  { header: 'KUBE-GROUPS', get: (g) => g.kubeGroups },
];

interface AuditRowView {
  time: string; kind: string; user: string | null; door: string | null; agent: string | null; target: string | null; result: string; reason: string | null;
  bytesIn: number | null; bytesOut: number | null; durationMs: number | null;
  verb?: string | null; resource?: string | null; namespace?: string | null; name?: string | null; status?: number | null;
}

/** A kube row's request in kubectl's words: `list pods -n team-a → 200`. */
function kubeRequest(r: AuditRowView): string | null {
  if (r.kind !== 'kube' || !r.verb) return null;
  return `${r.verb} ${r.resource ?? ''}${r.name ? `/${r.name}` : ''}${r.namespace ? ` -n ${r.namespace}` : ''} → ${r.status ?? '?'}`;
}
const auditColumns: Column<AuditRowView>[] = [
  { header: 'TIME', get: (r) => r.time },
  { header: 'KIND', get: (r) => r.kind },
  { header: 'USER', get: (r) => r.user },
  { header: 'DOOR', get: (r) => r.door },
  { header: 'AGENT', get: (r) => r.agent },
  { header: 'TARGET', get: (r) => r.target },
  { header: 'RESULT', get: (r) => r.result },
  { header: 'REQUEST', get: kubeRequest },
  { header: 'IN', get: (r) => r.bytesIn },
  { header: 'OUT', get: (r) => r.bytesOut },
  { header: 'MS', get: (r) => r.durationMs },
  { header: 'REASON', get: (r) => r.reason },
];

export function registerAdmin(program: Command): void {
  program
    .command('login')
    .description('Save the hub URL, your token and the pinned hub CA for later commands.')
    .requiredOption('--hub <url>', 'hub URL, e.g. https://hub.example.com:8443')
    .requiredOption('--token <token>', 'your access token')
    .requiredOption('--ca-fingerprint <pin>', 'sha256:… pin of the hub CA (printed by `warren hub`)')
    .option('--context <name>', "name of the saved context (default: the hub's host:port); it becomes the current one")
    .addHelpText('after', `
Each login is kept as a named context, like a kubeconfig's: \`warren config get-contexts\` lists them,
\`warren config use-context NAME\` switches, \`--context NAME\` picks one for one command.

Examples:
  warren login --hub https://hub.example.com:8443 --token "$(cat admin.token)" --ca-fingerprint sha256:…
  warren login --context lab --hub https://10.0.0.5:8443 --token "$LAB_TOKEN" --ca-fingerprint sha256:…`)
    .action(async (o: { hub: string; token: string; caFingerprint: string; context?: string }) => {
      const url = parseHubUrl(o.hub);
      const pin = normalisePin(o.caFingerprint);
      const caPem = await fetchPinnedCa({ url }, pin);
      const me = jsonOrThrow<{ user: string; groups: string[] }>(await hubRequest({ url, ca: caPem }, 'GET', '/api/v1/whoami', { token: o.token }));
      const context = o.context ?? defaultContextName(url.origin);
      const file = writeLogin({ hub: url.origin, token: o.token, caPin: pin, caPem }, context);
      process.stdout.write(`Logged in to ${url.origin} as ${me.user}${me.groups.length ? ` (${me.groups.join(', ')})` : ''}; saved to ${file} as context "${context}" (current)\n`);
    });

  const jt = program.command('join-token').description('Join tokens that let agents register.');
  jt.command('create')
    .description('Create a join token and print the agent command that uses it. By default an agent joining with it may take any free name and serve no cluster and no route.')
    .option('--ttl <d>', 'how long the token may be used', '1h')
    .option('--uses <n>', 'how many agents may join with it ("unlimited" for a fleet image)', '1')
    .option('--labels <k=v,...>', 'labels given to agents that join with it (they win over labels the agent sends)')
    .option('--name <name>', 'the one agent name it allows')
    .option('--name-pattern <glob>', 'agent names it allows, e.g. "dev-*"')
    .option('--clusters <a,b>', 'Kubernetes clusters agents joining with it may serve (--cluster)', collect, [])
    .option('--routes <cidr|.suffix,...>', 'routes agents joining with it may advertise (--route), or any route inside them', collect, [])
    .option('--source-ips <ip,...>', 'addresses a gateway agent joining with it may dial from and listen on (--source-ip; egress and ingress rules)', collect, [])
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  warren join-token create --name node7 --routes 10.20.0.0/16          # one node serving a subnet
  warren join-token create --name gw1 --source-ips 10.9.0.5,10.9.0.6   # a gateway for static egress source IPs
  warren join-token create --uses 3 --name-pattern 'alpha-*' --clusters alpha   # three replicas of cluster alpha`)
    .action(async (o: { ttl: string; uses: string; labels?: string; name?: string; namePattern?: string; clusters: string[]; routes: string[]; sourceIps: string[] }, cmd: Command) => {
      const uses = o.uses === 'unlimited' ? null : Number(o.uses);
      if (uses !== null && (!Number.isInteger(uses) || uses < 1)) throw new WarrenError('WARREN_E_USAGE', '--uses must be a whole number ≥ 1 or "unlimited"');
      if (o.name !== undefined && o.namePattern !== undefined) throw new WarrenError('WARREN_E_USAGE', '--name and --name-pattern are alternatives: give one');
      const out = await call<{ token: string; expiresAt: string; command: string; id: string }>(cmd, 'POST', '/api/v1/join-tokens', {
        ttl: duration('--ttl', o.ttl), uses, labels: parseLabels(o.labels), name: o.name, namePattern: o.namePattern,
        clusters: o.clusters, routes: o.routes, sourceIps: o.sourceIps,
      });
      const view = { token: out.token, expiresAt: out.expiresAt, command: out.command, id: out.id };
      if (parseFormat(clientFlags(cmd).output) === 'table') {
        process.stdout.write(`Join token (id ${out.id}, expires ${out.expiresAt}):\n\n  ${out.token}\n\nOn the node, run:\n\n  ${out.command}\n`);
      } else print(cmd, view, []);
    });
  jt.command('ls')
    .description('List join tokens (never their secrets).')
    .addHelpText('after', `
Examples:
  warren join-token ls
  warren join-token ls -o json`)
    .action(async (_o, cmd: Command) => {
      const rows = await call<Array<{ id: string; expiresAt: string; uses: number | null; used: number; expired: boolean; labels: Record<string, string>; authority: AgentAuthority }>>(cmd, 'GET', '/api/v1/join-tokens');
      print(cmd, rows, [
        { header: 'ID', get: (t) => t.id }, { header: 'EXPIRES', get: (t) => (t.expired ? `expired ${t.expiresAt}` : t.expiresAt) },
        { header: 'USED', get: (t) => `${t.used}/${t.uses ?? '∞'}` }, { header: 'ALLOWS', get: (t) => describeAuthority(t.authority) },
        { header: 'LABELS', get: (t) => t.labels },
      ]);
    });
  jt.command('rm <id>')
    .description('Delete a join token.')
    .addHelpText('after', `
Examples:
  warren join-token rm 3f2a9c01d4e5b6a7        # the ID column of \`warren join-token ls\``)
    .action(async (id: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/join-tokens/${encodeURIComponent(id)}`);
      process.stdout.write(`join token ${id} deleted\n`);
    });

  const agents = program.command('agents').description('Agents registered with the hub.');
  agents
    .command('ls')
    .description('List agents with their live tunnel state.')
    .addHelpText('after', `
Examples:
  warren agents ls
  warren agents ls -o json | jq -r '.[] | select(.connected) | .name'`)
    .action(async (_o, cmd: Command) => print(cmd, await call<AgentRow[]>(cmd, 'GET', '/api/v1/agents'), agentColumns));
  agents
    .command('show <name>')
    .description('Show one agent: what it claims now (clusters, routes) and what its join token lets it claim (authority).')
    .addHelpText('after', `
Examples:
  warren agents show node1
  warren agents show node1 -o yaml`)
    .action(async (name: string, _o, cmd: Command) => print(cmd, await call<AgentRow>(cmd, 'GET', `/api/v1/agents/${encodeURIComponent(name)}`), agentColumns));
  agents
    .command('rm <name>')
    .description('Remove an agent: revokes its certificate and drops its tunnel at once.')
    .addHelpText('after', `
To bring it back, join it again with a new token: WARREN_JOIN_TOKEN=wj1.… warren agent (same --data-dir).

Examples:
  warren agents rm node1`)
    .action(async (name: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/agents/${encodeURIComponent(name)}`);
      process.stdout.write(`agent ${name} removed; its certificate is revoked\n`);
    });

  const hubs = program.command('hubs').description('Hubs sharing one store (several replicas on PostgreSQL).');
  hubs
    .command('ls')
    .description('List the live hubs: relay address, lease, agents connected to each, which one holds the hub-side forwards.')
    .addHelpText('after', `
A hub that stops renewing its lease (killed, cut off from the database) leaves the list within two
--hub-lease periods; one that stops cleanly leaves at once.

Examples:
  warren hubs ls
  warren hubs ls -o json | jq -r '.[] | .id + " " + (.agents | tostring)'`)
    .action(async (_o, cmd: Command) => {
      const rows = await call<Array<{ id: string; relayUrl: string; startedAt: string; leaseExpiresAt: string; self: boolean; leader: boolean; agents: number }>>(cmd, 'GET', '/api/v1/hubs');
      print(cmd, rows, [
        { header: 'ID', get: (h) => (h.self ? `${h.id} (this one)` : h.id) }, { header: 'RELAY', get: (h) => h.relayUrl }, { header: 'AGENTS', get: (h) => String(h.agents) },
        { header: 'FORWARDS', get: (h) => (h.leader ? 'yes' : '') }, { header: 'STARTED', get: (h) => h.startedAt }, { header: 'LEASE UNTIL', get: (h) => h.leaseExpiresAt },
      ]);
    });

  program
    .command('user-cert')
    .description('Client certificates for people and programs, usable instead of a token.')
    .command('create')
    .description('Create a key here and have the hub sign a client certificate for it (PREFIX.key, PREFIX.crt).')
    .requiredOption('--user <name>', 'subject of the certificate')
    .option('--groups <a,b>', 'groups of the subject', collect, [])
    .option('--ttl <d>', 'lifetime (certificates cannot be revoked: keep it short)', '24h')
    .requiredOption('--out <prefix>', 'write the key to PREFIX.key (0600) and the certificate to PREFIX.crt')
    .addOption(outputOption())
    .addHelpText('after', `
Example:
  warren user-cert create --user ci-bot --groups deploy --ttl 8h --out ./ci-bot
  curl -p -x https://hub:8443 --proxy-cacert ca.crt --proxy-cert ci-bot.crt --proxy-key ci-bot.key http://web.node1.warren:8080/`)
    .action(async (o: { user: string; groups: string[]; ttl: string; out: string }, cmd: Command) => {
      const { createCsr } = await import('../../pki/pki.js');
      const { csrPem, keyPem } = await createCsr(o.user.replace(/[^A-Za-z0-9.-]/g, '-'));
      const out = await call<{ certPem: string; serial: string; expiresAt: string }>(cmd, 'POST', '/api/v1/user-certs', {
        user: o.user, groups: o.groups, ttl: duration('--ttl', o.ttl), csr: csrPem,
      });
      fs.writeFileSync(`${o.out}.key`, keyPem, { mode: 0o600 });
      fs.writeFileSync(`${o.out}.crt`, out.certPem, { mode: 0o644 });
      if (parseFormat(clientFlags(cmd).output) === 'table') {
        process.stdout.write(`wrote ${o.out}.key and ${o.out}.crt (serial ${out.serial}, expires ${out.expiresAt})\n`);
      } else print(cmd, { key: `${o.out}.key`, cert: `${o.out}.crt`, serial: out.serial, expiresAt: out.expiresAt }, []);
    });
  const tokens = program.command('tokens').description('Access tokens for people and programs: create, list, revoke.');
  tokens
    .command('create')
    .description('Issue an access token.')
    .requiredOption('--user <name>', 'subject of the token')
    .option('--groups <a,b>', 'groups of the subject', collect, [])
    .option('--ttl <d>', 'lifetime', '8h')
    .addOption(outputOption())
    .addHelpText('after', `
The token is printed once (table: the token alone, for $(…)); the hub keeps only its hash.

Examples:
  warren token create --user ana --groups ops --ttl 8h
  TOKEN=$(warren token create --user ci-bot --ttl 1h)`)
    .action(async (o: { user: string; groups: string[]; ttl: string }, cmd: Command) => {
      const out = await call<{ token: string; user: string; groups: string[]; expiresAt: string; id: string }>(cmd, 'POST', '/api/v1/tokens', {
        user: o.user, groups: o.groups, ttl: duration('--ttl', o.ttl),
      });
      const view = { token: out.token, user: out.user, groups: out.groups, expiresAt: out.expiresAt, id: out.id };
      if (parseFormat(clientFlags(cmd).output) === 'table') process.stdout.write(out.token + '\n');
      else print(cmd, view, []);
    });
  tokens
    .command('ls')
    .description('List access tokens (ids only).')
    .addHelpText('after', `
Examples:
  warren tokens ls
  warren tokens ls -o json`)
    .action(async (_o, cmd: Command) => {
      const rows = await call<Array<{ id: string; user: string; groups: string[]; expiresAt: string | null; revoked: boolean }>>(cmd, 'GET', '/api/v1/tokens');
      print(cmd, rows, [
        { header: 'ID', get: (t) => t.id }, { header: 'USER', get: (t) => t.user }, { header: 'GROUPS', get: (t) => t.groups },
        { header: 'EXPIRES', get: (t) => t.expiresAt ?? 'never' }, { header: 'REVOKED', get: (t) => t.revoked },
      ]);
    });
  tokens
    .command('rm <id>')
    .description('Revoke an access token.')
    .addHelpText('after', `
Examples:
  warren tokens rm 6c1d…        # the ID column of \`warren tokens ls\``)
    .action(async (id: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
      process.stdout.write(`token ${id} revoked\n`);
    });

  defineGrant(program.command('grant'));
  const grants = program.command('grants').description('Grants: who may reach which targets or clusters.');
  defineGrant(grants.command('create'));
  examples(grants.command('ls').description('List grants.'), ['warren grants ls', 'warren grants ls -o json']).action(async (_o, cmd: Command) => print(cmd, await call<GrantRow[]>(cmd, 'GET', '/api/v1/grants'), grantColumns));
  grants
    .command('rm <id>')
    .description('Delete a grant.')
    .addHelpText('after', `
Examples:
  warren grants rm 4b9e…        # the ID column of \`warren grants ls\``)
    .action(async (id: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/grants/${encodeURIComponent(id)}`);
      process.stdout.write(`grant ${id} deleted\n`);
    });

  program
    .command('audit')
    .description('Audit trail: streams, kube requests, agent connections, admin changes. A non-admin sees only their own rows.')
    .option('--since <d|iso>', 'only rows newer than this (e.g. 1h, 2026-01-01T00:00:00Z)', '24h')
    .option('--user <name>', 'only this user (admins; others see only their own rows)')
    .option('--agent <name>', 'only this agent')
    .option('--kind <kind>', 'stream, kube, agent, admin or shell (web shell sessions)')
    .option('--limit <n>', 'at most this many rows, the newest', '1000')
    .option('--follow', 'keep printing rows as they are written')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  warren audit --since 1h                        # your own rows (admins: everyone's)
  warren audit --kind stream --follow -o json    # live, one JSON object a line
  warren audit --user ana --agent site-1         # admins: one user through one agent`)
    .action(async (o: { since: string; user?: string; agent?: string; kind?: string; limit: string; follow?: boolean }, cmd: Command) => {
      const q = new URLSearchParams({ since: o.since, limit: o.limit });
      if (o.user) q.set('user', o.user);
      if (o.agent) q.set('agent', o.agent);
      if (o.kind) q.set('kind', o.kind);
      if (!o.follow) return print(cmd, await call<AuditRowView[]>(cmd, 'GET', `/api/v1/audit?${q}`), auditColumns);
      q.set('follow', 'true');
      await followAudit(cmd, `/api/v1/audit?${q}`);
    });
}

/** `warren grant …` and `warren grants create …`: the same command under both names. */
function defineGrant(cmd: Command): Command {
  return cmd
    .description('Allow a user or group to reach targets through agents, or to use a cluster.')
    .option('--user <name>', 'the user to grant')
    .option('--group <name>', 'the group to grant')
    .option('--agent <glob>', 'agents whose targets are granted (e.g. "site-*")')
    .option('--host <glob|cidr>', 'hosts the agent dials (localhost for its own host)')
    .option('--ports <list>', 'ports, e.g. 22,8000-8100')
    .option('--cluster <glob>', 'cluster(s) whose API is granted')
    .option('--kube-groups <a,b>', 'extra Kubernetes groups to impersonate for this grant', collect, [])
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  warren grant --user ana --agent 'site-*' --ports 22
  warren grant --group ops --agent gw --host 10.20.0.0/16
  warren grant --group dev --cluster prod --kube-groups view`)
    .action(async (o: { user?: string; group?: string; agent?: string; host?: string; ports?: string; cluster?: string; kubeGroups: string[] }, cmd: Command) => {
      if (!o.user === !o.group) throw new WarrenError('WARREN_E_USAGE', 'give exactly one of --user or --group');
      if (!o.agent === !o.cluster) throw new WarrenError('WARREN_E_USAGE', 'give exactly one of --agent (targets) or --cluster (Kubernetes API)');
      const body = { user: o.user, group: o.group, agent: o.agent, host: o.host, ports: o.ports, cluster: o.cluster, kubeGroups: o.kubeGroups };
      const g = await call<GrantRow>(cmd, 'POST', '/api/v1/grants', body);
      if (parseFormat(clientFlags(cmd).output) === 'table') process.stdout.write(`grant ${g.id} created\n`);
      else print(cmd, g, grantColumns);
    });
}

/** Streams NDJSON rows; json output prints one JSON object a line, tables one row a line. */
async function followAudit(cmd: Command, path: string): Promise<void> {
  const { endpoint, token } = await resolveClient(clientFlags(cmd));
  const format = parseFormat(clientFlags(cmd).output);
  const socket = await dialHub(endpoint);
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ createConnection: () => socket, method: 'GET', path, headers: { host: endpoint.url.host, authorization: `Bearer ${token}` } });
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => {
          try {
            jsonOrThrow({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          } catch (err) {
            reject(err);
          }
        });
        return;
      }
      let buffered = '';
      let header = format === 'table';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          if (format === 'json') process.stdout.write(line + '\n');
          else {
            const text = render([JSON.parse(line) as AuditRowView], format, auditColumns);
            process.stdout.write(header ? text : text.split('\n').slice(1).join('\n'));
            header = false;
          }
        }
      });
      res.once('end', resolve);
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

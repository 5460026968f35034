/** Self-service, for every user: `warren whoami` and `warren ls` (what my grants reach, like `tsh ls`). */
import type { Command } from 'commander';
import type { z } from 'zod';
import { hubRequest, jsonOrThrow, type HubResponse } from '../../client/hubHttp.js';
import type { Me, MyAccess } from '../../hub/apiSchemas.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { parseFormat, render } from '../output.js';
import { outputOption } from '../conventions.js';

type Opts = ClientFlags & { output?: string; user?: string; groups?: string };

async function get(o: Opts, path: string): Promise<{ res: HubResponse; hub: string }> {
  const { endpoint, token } = await resolveClient(o);
  return { res: await hubRequest(endpoint, 'GET', path, { token }), hub: endpoint.url.origin };
}

/** `2026-05-01T10:00:00.000Z (in 7h59m)`, `… (expired)`, or `never`. */
function expiry(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never';
  const left = Date.parse(iso) - now;
  if (left <= 0) return `${iso} (expired)`;
  const m = Math.floor(left / 60_000);
  const d = Math.floor(m / 1440);
  return `${iso} (in ${d ? `${d}d${Math.floor((m % 1440) / 60)}h` : m >= 60 ? `${Math.floor(m / 60)}h${m % 60}m` : `${m}m`})`;
}

export function registerSelf(program: Command): void {
  program
    .command('whoami')
    .description('Show who the hub thinks you are: user, groups, when your credential expires, and the hub.')
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  warren whoami
  warren whoami -o json | jq -r .expiresAt`)
    .action(async (_o, cmd: Command) => {
      const o = cmd.optsWithGlobals<Opts>();
      const { res, hub } = await get(o, '/api/v1/me');
      const me = jsonOrThrow<z.output<typeof Me>>(res);
      const format = parseFormat(o.output);
      if (format !== 'table') return void process.stdout.write(render(me, format, []));
      const rows: Array<[string, string]> = [
        ['hub', `${hub} (version ${me.hub.version})`],
        ['hub-ca', me.hub.caFingerprint],
        ['user', me.user],
        ['groups', me.groups.join(', ') || '-'],
        ['admin', me.admin ? 'yes' : 'no'],
        ['credential', me.via === 'token' && me.tokenId ? `access token ${me.tokenId}` : me.via],
        ['expires', expiry(me.expiresAt)],
      ];
      process.stdout.write(render(rows, 'table', [{ header: 'ATTRIBUTE', get: (r) => r[0] }, { header: 'VALUE', get: (r) => r[1] }]));
    });

  program
    .command('ls')
    .description('List what your grants reach: agents (online or not, RTT), the hosts and ports you may open through each, and clusters.')
    .option('--user <name>', "admins: list another user's access (groups from their live tokens unless --groups)")
    .option('--groups <a,b>', 'judge with these groups (yours, or any for admins)')
    .addHelpText('after', `
Each row is one agent and one grant that covers it. HOSTS is what the agent may dial for you:
localhost is the agent's own host (AGENT:22), a glob or CIDR a host behind it (HOST.AGENT.warren:PORT
or an address in its ROUTES), * anything it reaches.

Examples:
  warren ls
  warren ls -o json | jq -r '.targets[] | select(.connected) | .agent'
  ssh -o ProxyCommand='warren connect %h:%p' root@AGENT       # an agent listed with port 22
  warren ls --user ana                                          # admins: what ana may reach`)
    .action(async (_o, cmd: Command) => {
      const o = cmd.optsWithGlobals<Opts>();
      const q = new URLSearchParams();
      if (o.user) q.set('user', o.user);
      if (o.groups !== undefined) q.set('groups', o.groups);
      const access = jsonOrThrow<z.output<typeof MyAccess>>((await get(o, `/api/v1/me/access${q.size ? `?${q}` : ''}`)).res);
      const format = parseFormat(o.output);
      if (format !== 'table') return void process.stdout.write(render(access, format, []));
      const who = `${access.user}${access.groups.length ? ` (${access.groups.join(', ')})` : ''}`;
      if (access.targets.length === 0 && access.clusters.length === 0) {
        process.stdout.write(`Nothing: no grant gives ${who} access yet. An admin grants it with \`warren grant --user ${access.user} --agent NAME\`.\n`);
        return;
      }
      const parts: string[] = [];
      if (access.targets.length) {
        parts.push(render([...access.targets], 'table', [
          { header: 'AGENT', get: (t) => t.agent },
          { header: 'STATUS', get: (t) => (t.connected ? 'online' : 'offline') },
          { header: 'RTT', get: (t) => (t.rttMs === null ? null : `${Math.round(t.rttMs)}ms`) },
          { header: 'HOSTS', get: (t) => t.hosts },
          { header: 'PORTS', get: (t) => t.ports },
          { header: 'ROUTES', get: (t) => t.routes },
          { header: 'LABELS', get: (t) => t.labels },
          { header: 'GRANT', get: (t) => t.grant },
        ]));
      }
      if (access.clusters.length) {
        parts.push(render([...access.clusters], 'table', [
          { header: 'CLUSTER', get: (c) => c.name },
          { header: 'STATUS', get: (c) => (c.connected ? 'online' : 'offline') },
          { header: 'AGENTS', get: (c) => `${c.connectedAgents.length}/${c.agents.length} online` },
          { header: 'KUBE-GROUPS', get: (c) => c.kubeGroups },
        ]));
      }
      process.stdout.write(parts.join('\n'));
    });
}

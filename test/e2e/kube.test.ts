// Acceptance: the Kubernetes door, end to end with the real clients.
//
// A real hub and real agents (`warren agent --kube KUBECONFIG --cluster NAME`) in front of the
// kube-apiserver stand-in (test/support/kube/apiserver.ts, itself proven against kubectl and
// client-node by test/kube-standin.test.ts). The stand-in authenticates the agent's service-account
// token and enforces RBAC on the *impersonated* identity: user `dev` may work with pods in `team-a`
// only, group `cluster-admins` may do everything. Driven by Debian's kubectl 1.32 with kubeconfigs that
// `warren kubeconfig` generates, and by @kubernetes/client-node 1.4:
//
//   - as dev: get pods -n team-a works; get pods -A and get ns are Forbidden with the member's message
//   - a grant's --kube-groups cluster-admins lists everything
//   - watch prints a pod created after it started within 1 s; apply then delete; logs -f
//   - exec and port-forward echo data through the upgrade path, over WebSocket and over SPDY
//   - two clusters in one kubeconfig, --context and use-context switch; a cluster whose agent is gone
//     answers the 503 Status; no grant 403, unknown cluster 404, no credentials 401
//   - a multikube-style RS256 JWT routes by `ctx` on the API root and is impersonated as jwt:SUB with
//     jwt:GROUP groups; unknown ctx → 404 ContextNotFound; it is no credential at the admin API
//   - a client-sent Impersonate-User: admin does not escalate, and the audit row says it was stripped
//   - two agents serve one cluster: new streams spread over both, and one leaving fails over
//   - `warren agent manifest` makes a join token that an agent with --token-file joins with, and the
//     agent's health endpoints follow its tunnel
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { SignJWT } from 'jose';
import YAML from 'yaml';
import { AGENT_SERVICE_ACCOUNT, startFakeApiserver, type FakeApiserver, type RecordedRequest } from '../support/kube/apiserver.js';
import { ChildGroup, outputTail, run, waitForExit, waitForLine, waitForReady, withDeadline, type RunResult } from '../support/proc.js';
import { accessToken, cli, cliJson, startAgent, startHub, tempDir, WARREN_BIN, type AgentProc, type HubProc } from '../support/warren.js';

interface KubeAuditRow {
  id: number;
  kind: string;
  user: string | null;
  agent: string | null;
  target: string | null;
  result: string;
  reason: string | null;
  durationMs: number | null;
  verb: string | null;
  resource: string | null;
  namespace: string | null;
  name: string | null;
  status: number | null;
}

/** A kube row's request columns in one line: `list pods team-a - 200` (`-` for an empty column). */
const request = (r: KubeAuditRow) => [r.verb, r.resource, r.namespace, r.name, r.status].map((v) => v ?? '-').join(' ');

interface Http {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends `data`, half-closes, and resolves with everything the server sent until its EOF. */
function tcpExchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end(data));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
  });
}

describe('the Kubernetes door: kubectl and client-node through the hub to member clusters', () => {
  const procs = new ChildGroup();
  const dir = tempDir('kube');
  let alphaApi: FakeApiserver;
  let betaApi: FakeApiserver;
  let hub: HubProc;
  let hubCa: string;
  let jwtKey: KeyObject;
  const agents = new Map<string, AgentProc>();
  let devKc: string;
  let aliceKc: string;
  let devToken: string;

  const kubectlEnv = (extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, HOME: dir, KUBECONFIG: '', ...extra });
  const kubectlArgs = (kubeconfig: string, args: readonly string[]) => ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache'), ...args];
  function kubectl(kubeconfig: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return run('kubectl', kubectlArgs(kubeconfig, args), { input: opts.input, env: kubectlEnv(opts.env), timeoutMs: 30_000 });
  }
  const mark = (api: FakeApiserver) => api.requests.at(-1)?.id ?? 0;
  const since = (api: FakeApiserver, m: number, pred: (r: RecordedRequest) => boolean) => api.requests.filter((r) => r.id > m && pred(r));

  /** One HTTPS request to the hub, verifying it with its CA. */
  function hubHttp(method: string, urlPath: string, headers: Record<string, string | string[]> = {}): Promise<Http> {
    return new Promise((resolve, reject) => {
      const req = https.request(`${hub.url}${urlPath}`, { method, headers, ca: hubCa, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        // An answer cut after its head ends with 'close' and no 'end'.
        res.on('close', () => res.complete || reject(new Error(`the answer (${res.statusCode}) was cut after ${body.length} bytes of its body`)));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** Polls the audit trail until a kube row matches (rows are written when a request has ended). */
  async function kubeAudit(pred: (r: KubeAuditRow) => boolean, what: string, count = 1): Promise<KubeAuditRow[]> {
    let rows: KubeAuditRow[] = [];
    await withDeadline(
      (async () => {
        for (;;) {
          rows = (await cliJson<KubeAuditRow[]>(hub, ['audit', '--kind', 'kube', '--limit', '100000'])).filter(pred);
          if (rows.length >= count) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      })(),
      10_000,
      `audit rows for ${what}`,
    );
    return rows;
  }

  function writeKubeconfig(name: string, text: string): string {
    const file = path.join(dir, `${name}.kubeconfig`);
    fs.writeFileSync(file, text, { mode: 0o600 });
    return file;
  }

  async function kubeconfigFor(name: string, args: readonly string[]): Promise<string> {
    const r = await cli(hub, ['kubeconfig', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return writeKubeconfig(name, r.stdout);
  }

  async function startKubeAgent(name: string, cluster: string, api: FakeApiserver, extra: readonly string[] = []): Promise<AgentProc> {
    const kc = path.join(dir, `agent-${name}.kubeconfig`);
    fs.writeFileSync(kc, api.kubeconfig('agent'), { mode: 0o600 });
    const agent = await startAgent({ group: procs, hub, name, args: ['--kube', kc, '--cluster', cluster, ...extra] });
    agents.set(name, agent);
    return agent;
  }

  before(async () => {
    // External JWT users live in the jwt: name space, and so does the member RBAC that admits them.
    const jwtDev = { users: ['jwt:dev'], verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'], namespaces: ['team-a'] };
    alphaApi = await startFakeApiserver({ extraRules: [jwtDev] });
    alphaApi.createPod('team-a', 'web-1');
    alphaApi.createPod('team-a', 'web-2');
    alphaApi.createPod('team-b', 'db-1');
    betaApi = await startFakeApiserver({ extraRules: [jwtDev] });
    betaApi.createPod('team-a', 'beta-web');

    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    jwtKey = keys.privateKey;
    const pub = path.join(dir, 'issuer.pub.pem');
    fs.writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
    hub = await startHub({ group: procs, args: ['--jwt-public-key', pub] });
    hubCa = fs.readFileSync(hub.caPath, 'utf8');

    await startKubeAgent('alpha-1', 'alpha', alphaApi);
    await startKubeAgent('alpha-2', 'alpha', alphaApi);
    await startKubeAgent('beta-1', 'beta', betaApi);
    await startKubeAgent('gamma-1', 'gamma', betaApi);

    for (const args of [
      ['--user', 'dev', '--cluster', 'alpha'],
      ['--user', 'dev', '--cluster', 'beta'],
      ['--user', 'dev', '--cluster', 'gamma'],
      ['--user', 'dev', '--cluster', 'omega-*'],
      ['--user', 'alice', '--cluster', 'alpha', '--kube-groups', 'cluster-admins'],
      ['--group', 'jwt:devs', '--cluster', '*'],
    ]) {
      const r = await cli(hub, ['grant', ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    devKc = await kubeconfigFor('dev', ['--cluster', 'alpha', '--cluster', 'beta,gamma', '--user', 'dev']);
    devToken = (YAML.parse(fs.readFileSync(devKc, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;
    aliceKc = await kubeconfigFor('alice', ['--all', '--user', 'alice']);
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    await alphaApi?.close();
    await betaApi?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('kubeconfigs', () => {
    it('has one context per cluster at https://HUB/k8s/clusters/NAME with the hub CA embedded', async () => {
      const config = YAML.parse(fs.readFileSync(devKc, 'utf8')) as {
        clusters: { name: string; cluster: { server: string; 'certificate-authority-data': string } }[];
        contexts: { name: string }[];
        'current-context': string;
      };
      assert.deepEqual(config.contexts.map((c) => c.name), ['alpha', 'beta', 'gamma']);
      assert.equal(config['current-context'], 'alpha');
      assert.deepEqual(config.clusters.map((c) => c.cluster.server), ['alpha', 'beta', 'gamma'].map((c) => `${hub.url}/k8s/clusters/${c}`));
      assert.equal(Buffer.from(config.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString(), hubCa);
      const contexts = await kubectl(devKc, ['config', 'get-contexts', '-o', 'name']);
      assert.deepEqual(contexts.stdout.trim().split('\n'), ['alpha', 'beta', 'gamma']);
    });

    it('--all lists only the clusters the user is granted', async () => {
      const config = YAML.parse(fs.readFileSync(aliceKc, 'utf8')) as { contexts: { name: string }[] };
      assert.deepEqual(config.contexts.map((c) => c.name), ['alpha']);
      const mine = await cli(hub, ['kubeconfig', '--all'], { token: devToken });
      assert.equal(mine.code, 0, mine.stderr);
      assert.deepEqual((YAML.parse(mine.stdout) as { contexts: { name: string }[] }).contexts.map((c) => c.name), ['alpha', 'beta', 'gamma']);
      assert.equal((YAML.parse(mine.stdout) as { users: { user: { token: string } }[] }).users[0]!.user.token, devToken, 'without --user: the caller\'s own token');
    });

    it('refuses contradictory flags as usage errors', async () => {
      assert.equal((await cli(hub, ['kubeconfig'])).code, 2);
      assert.equal((await cli(hub, ['kubeconfig', '--all', '--cluster', 'alpha'])).code, 2);
      assert.equal((await cli(hub, ['kubeconfig', '--cluster', 'alpha', '--groups', 'x'])).code, 2);
    });
  });

  describe('member RBAC decides, as the caller', () => {
    it('dev lists pods in team-a; the member cluster sees the agent account impersonating dev', async () => {
      const m = mark(alphaApi);
      const r = await kubectl(devKc, ['get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/m);
      assert.match(r.stdout, /^web-1\s+1\/1\s+Running\s+0\s+/m);
      assert.match(r.stdout, /^web-2\s+/m);
      const [list] = since(alphaApi, m, (q) => q.path === '/api/v1/namespaces/team-a/pods' && q.verb === 'list');
      assert.equal(list?.authenticatedUser, AGENT_SERVICE_ACCOUNT, 'the agent authenticates with its own credentials');
      assert.equal(list?.user, 'dev');
      assert.equal(list?.impersonatedUser, 'dev');
      assert.deepEqual(list?.groups, ['system:authenticated']);
      assert.equal(list?.headers.authorization, 'Bearer');
      assert.match(list?.headers.accept ?? '', /as=Table;v=v1;g=meta\.k8s\.io/, 'content negotiation passes through');
      const [row] = await kubeAudit((r) => r.user === 'dev' && request(r) === 'list pods team-a - 200', 'dev list pods');
      assert.equal(row!.target, 'alpha');
      assert.match(row!.agent ?? '', /^alpha-[12]$/);
      assert.equal(row!.result, 'ok');
      assert.equal(typeof row!.durationMs, 'number');
    });

    it('dev is Forbidden for pods -A and namespaces, with the member cluster\'s own message', async () => {
      const all = await kubectl(devKc, ['get', 'pods', '-A']);
      assert.equal(all.code, 1);
      assert.equal(all.stderr.trim(), 'Error from server (Forbidden): pods is forbidden: User "dev" cannot list resource "pods" in API group "" at the cluster scope');
      const ns = await kubectl(devKc, ['get', 'ns']);
      assert.equal(ns.code, 1);
      assert.equal(ns.stderr.trim(), 'Error from server (Forbidden): namespaces is forbidden: User "dev" cannot list resource "namespaces" in API group "" at the cluster scope');
      await kubeAudit((r) => r.user === 'dev' && r.result === 'denied' && request(r) === 'list namespaces - - 403', 'the 403 from the member');
    });

    it('a grant with --kube-groups cluster-admins lists everything', async () => {
      const m = mark(alphaApi);
      const pods = await kubectl(aliceKc, ['get', 'pods', '-A']);
      assert.equal(pods.code, 0, pods.stderr);
      assert.match(pods.stdout, /^team-a\s+web-1\s+/m);
      assert.match(pods.stdout, /^team-b\s+db-1\s+/m);
      const ns = await kubectl(aliceKc, ['get', 'ns']);
      assert.equal(ns.code, 0, ns.stderr);
      for (const name of ['default', 'kube-system', 'team-a', 'team-b']) assert.match(ns.stdout, new RegExp(`^${name}\\s+Active\\s+`, 'm'));
      const seen = since(alphaApi, m, (q) => q.path === '/api/v1/namespaces' && q.verb === 'list')[0];
      assert.equal(seen?.user, 'alice');
      assert.deepEqual(seen?.impersonatedGroups, ['cluster-admins']);
      const who = await kubectl(aliceKc, ['auth', 'whoami', '-o', 'json']);
      assert.deepEqual(JSON.parse(who.stdout).status.userInfo, { username: 'alice', groups: ['cluster-admins', 'system:authenticated'] });
    });

    it('a client-sent Impersonate-User: admin does not escalate, and is audited as stripped', async () => {
      const m = mark(alphaApi);
      const ns = await kubectl(devKc, ['get', 'ns', '--as', 'admin', '--as-group', 'system:masters']);
      assert.equal(ns.code, 1);
      assert.equal(ns.stderr.trim(), 'Error from server (Forbidden): namespaces is forbidden: User "dev" cannot list resource "namespaces" in API group "" at the cluster scope');
      const seen = since(alphaApi, m, (q) => q.path === '/api/v1/namespaces');
      assert.ok(seen.length > 0);
      for (const q of seen) {
        assert.equal(q.user, 'dev');
        assert.equal(q.impersonatedUser, 'dev');
        assert.deepEqual(q.impersonatedGroups, []);
      }
      assert.ok(since(alphaApi, m, () => true).every((q) => q.user === 'dev'), 'no request ran as anyone else');
      const [row] = await kubeAudit(
        (r) => r.user === 'dev' && r.verb === 'list' && r.resource === 'namespaces' && /stripped=(Impersonate-User,Impersonate-Group|Impersonate-Group,Impersonate-User)$/.test(r.reason ?? ''),
        'the stripped impersonation',
      );
      assert.equal(row!.result, 'denied');

      // Nor do Warren's own trusted header names, sent by a client.
      const m2 = mark(alphaApi);
      const forged = await hubHttp('GET', '/k8s/clusters/alpha/api/v1/namespaces', {
        Authorization: `Bearer ${devToken}`, 'Warren-Impersonate-User': 'admin', 'Warren-Impersonate-Group': 'system:masters', 'X-Remote-User': 'admin',
        'X-Forwarded-For': '203.0.113.7', Forwarded: 'for=203.0.113.7',
      });
      assert.equal(forged.status, 403);
      assert.match(JSON.parse(forged.body).message, /User "dev" cannot list resource "namespaces"/);
      assert.deepEqual(since(alphaApi, m2, () => true).map((q) => [q.user, q.impersonatedGroups]), [['dev', []]]);
      // The member's audit log sees the client as the hub saw it, not what the client claimed.
      assert.deepEqual(since(alphaApi, m2, () => true).map((q) => q.headers.xForwardedFor), ['127.0.0.1']);
    });
  });

  describe('streaming and writes', () => {
    it('kubectl get --watch prints a pod created after the watch started within 1 s', async (t) => {
      const watch = procs.spawn('kubectl', kubectlArgs(devKc, ['get', 'pods', '-n', 'team-a', '--watch']), { env: kubectlEnv() });
      await waitForLine(watch, /^web-1\s+1\/1\s+Running/, { timeoutMs: 15_000, stream: 'stdout' });
      // The first list is printed before the watch request goes out: create only once it is open.
      await withDeadline(
        (async () => {
          while (!alphaApi.requests.some((q) => q.verb === 'watch' && q.namespace === 'team-a' && q.user === 'dev' && q.status === 200)) {
            await new Promise((r) => setTimeout(r, 10));
          }
        })(),
        10_000,
        'the watch request at the member',
      );
      const name = `late-${randomBytes(3).toString('hex')}`;
      const created = Date.now();
      alphaApi.createPod('team-a', name);
      await waitForLine(watch, new RegExp(`^${name}\\s+`), { timeoutMs: 5_000, stream: 'stdout' });
      const ms = Date.now() - created;
      await procs.kill(watch);
      t.diagnostic(`created → printed by kubectl: ${ms} ms`);
      assert.ok(ms < 1000, `the event took ${ms} ms`);
      await kubeAudit((r) => r.user === 'dev' && request(r).startsWith('watch pods team-a '), 'the watch, once it ended');
    });

    it('`warren grants rm` cuts an open watch within 1 s, and the audit row says revoked', async () => {
      const { id } = await cliJson<{ id: string }>(hub, ['grant', '--user', 'frank', '--cluster', 'alpha', '--kube-groups', 'cluster-admins']);
      const frank = await accessToken(hub, 'frank');
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        https.request(`${hub.url}/k8s/clusters/alpha/api/v1/namespaces/team-a/pods?watch=true`, { headers: { Authorization: `Bearer ${frank}` }, ca: hubCa, agent: false }, resolve)
          .on('error', reject)
          .end();
      });
      assert.equal(res.statusCode, 200);
      res.resume();
      const closed = withDeadline(new Promise<number>((resolve) => res.socket.once('close', () => resolve(performance.now()))), 5_000, 'the watch closing after grants rm');
      const r = await cli(hub, ['grants', 'rm', id]);
      assert.equal(r.code, 0, r.stderr);
      const returned = performance.now();
      const at = await closed;
      assert.ok(at - returned < 1_000, `cut ${(at - returned).toFixed(0)} ms after the command returned`);
      const [row] = await kubeAudit((x) => x.user === 'frank' && x.verb === 'watch' && /error="revoked"/.test(x.reason ?? ''), 'the revoked watch');
      assert.equal(row!.result, 'denied');
    });

    it('kubectl apply -f creates and updates, then delete removes', async () => {
      const file = path.join(dir, 'applied.yaml');
      const manifest = (image: string) =>
        `apiVersion: v1\nkind: Pod\nmetadata:\n  name: applied\n  namespace: team-a\n  labels: { app: demo }\nspec:\n  containers:\n  - name: main\n    image: ${image}\n`;
      fs.writeFileSync(file, manifest('nginx:1.27'));
      const created = await kubectl(aliceKc, ['apply', '-f', file]);
      assert.equal(created.stdout.trim(), 'pod/applied created', created.stderr);
      fs.writeFileSync(file, manifest('nginx:1.28'));
      const updated = await kubectl(aliceKc, ['apply', '-f', file]);
      assert.equal(updated.stdout.trim(), 'pod/applied configured', updated.stderr);
      const ssa = await kubectl(aliceKc, ['apply', '--server-side', '--force-conflicts', '-f', file]);
      assert.equal(ssa.stdout.trim(), 'pod/applied serverside-applied', ssa.stderr);
      const dry = await kubectl(aliceKc, ['delete', '-f', file, '--dry-run=server']);
      assert.equal(dry.stdout.trim(), 'pod "applied" deleted (server dry run)', dry.stderr);
      assert.ok(alphaApi.getObject('pods', 'team-a', 'applied'));
      const deleted = await kubectl(aliceKc, ['delete', '-f', file]);
      assert.equal(deleted.stdout.trim(), 'pod "applied" deleted', deleted.stderr);
      assert.equal(alphaApi.getObject('pods', 'team-a', 'applied'), undefined);

      // dev may create and delete pods in team-a (and nowhere else)
      const devFile = path.join(dir, 'dev-pod.yaml');
      fs.writeFileSync(devFile, 'apiVersion: v1\nkind: Pod\nmetadata: { name: dev-pod, namespace: team-a }\nspec:\n  containers: [{ name: main, image: busybox }]\n');
      const devCreated = await kubectl(devKc, ['apply', '-f', devFile]);
      assert.equal(devCreated.stdout.trim(), 'pod/dev-pod created', devCreated.stderr);
      const devDeleted = await kubectl(devKc, ['delete', '-f', devFile]);
      assert.equal(devDeleted.stdout.trim(), 'pod "dev-pod" deleted', devDeleted.stderr);
      await kubeAudit((r) => r.user === 'dev' && request(r) === 'delete pods team-a dev-pod 200', 'the delete');
    });

    it('kubectl logs -f streams lines as they are appended', async () => {
      alphaApi.appendLog('team-a', 'web-2', 'first line');
      const logs = procs.spawn('kubectl', kubectlArgs(aliceKc, ['logs', '-f', '-n', 'team-a', 'web-2']), { env: kubectlEnv() });
      await waitForLine(logs, /^first line$/, { timeoutMs: 15_000, stream: 'stdout' });
      for (let i = 0; i < 3; i++) {
        const line = `appended ${i} ${randomBytes(3).toString('hex')}`;
        alphaApi.appendLog('team-a', 'web-2', line);
        await waitForLine(logs, new RegExp(`^${line}$`), { timeoutMs: 5_000, stream: 'stdout' });
      }
      await procs.kill(logs);
    });

    for (const transport of ['websocket', 'spdy'] as const) {
      it(`kubectl exec -i … cat echoes stdin through the upgrade path (${transport})`, async () => {
        const env = transport === 'spdy' ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' } : {};
        const m = mark(alphaApi);
        const payload = `hello ${transport} ${randomBytes(4).toString('hex')}\n${'x'.repeat(100_000)}\nlast line\n`;
        const r = await kubectl(aliceKc, ['exec', '-i', '-n', 'team-a', 'web-1', '--', 'cat'], { input: payload, env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, payload);
        const up = since(alphaApi, m, (q) => q.subresource === 'exec')[0];
        assert.equal(up?.status, 101);
        assert.equal(up?.user, 'alice');
        assert.equal(transport === 'spdy' ? up?.headers.upgrade : up?.headers.upgrade?.toLowerCase(), transport === 'spdy' ? 'SPDY/3.1' : 'websocket');
        const failed = await kubectl(aliceKc, ['exec', '-n', 'team-a', 'web-1', '--', 'false'], { env });
        assert.equal(failed.code, 1);
        assert.match(failed.stderr, /command terminated with exit code 1/);
        await kubeAudit((r) => r.user === 'alice' && request(r) === 'create pods/exec team-a web-1 101', 'the exec');
      });
    }

    it('an exec the member forbids is refused with its message', async () => {
      const exec = await kubectl(devKc, ['exec', '-n', 'team-a', 'web-1', '--', 'true']);
      assert.equal(exec.code, 1);
      assert.match(exec.stderr, /pods "web-1" is forbidden: User "dev" cannot create resource "pods\/exec" in API group "" in the namespace "team-a"/);
    });

    for (const transport of ['websocket', 'spdy'] as const) {
      it(`kubectl port-forward echoes data both ways, half-close included (${transport})`, async () => {
        const env = transport === 'spdy' ? { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' } : {};
        const pf = procs.spawn('kubectl', kubectlArgs(aliceKc, ['port-forward', '-n', 'team-a', 'pod/web-1', ':80']), { env: kubectlEnv(env) });
        const [, local] = await waitForLine(pf, /^Forwarding from 127\.0\.0\.1:(\d+) -> 80$/, { timeoutMs: 15_000, stream: 'stdout' });
        for (let i = 0; i < 2; i++) {
          const data = randomBytes(300_000);
          const echoed = await withDeadline(tcpExchange(Number(local), data), 10_000, 'echo through port-forward');
          assert.ok(echoed.equals(data), `connection ${i}: ${echoed.length} bytes back of ${data.length}`);
        }
        await procs.kill(pf);
      });
    }
  });

  describe('several clusters', () => {
    it('--context and use-context switch between clusters of one kubeconfig', async () => {
      const beta = await kubectl(devKc, ['--context', 'beta', 'get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.equal(beta.code, 0, beta.stderr);
      assert.equal(beta.stdout.trim(), 'pod/beta-web');
      const alpha = await kubectl(devKc, ['--context', 'alpha', 'get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.match(alpha.stdout, /^pod\/web-1$/m);
      const copy = writeKubeconfig('dev-copy', fs.readFileSync(devKc, 'utf8'));
      assert.equal((await kubectl(copy, ['config', 'use-context', 'beta'])).code, 0);
      const current = await kubectl(copy, ['get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.equal(current.stdout.trim(), 'pod/beta-web', current.stderr);
    });

    it('client-node loads the generated kubeconfig: list, a 403, and a watch', async () => {
      const kc = new KubeConfig();
      kc.loadFromFile(devKc);
      const core = kc.makeApiClient(CoreV1Api);
      const pods = await core.listNamespacedPod({ namespace: 'team-a' });
      assert.ok(pods.items.some((p) => p.metadata?.name === 'web-1'));
      await assert.rejects(core.listNamespace(), (err: { code?: number; body?: string }) => {
        assert.equal(err.code, 403);
        assert.match(String(err.body), /User \\?"dev\\?" cannot list resource \\?"namespaces\\?"/);
        return true;
      });
      kc.setCurrentContext('beta');
      const beta = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'team-a' });
      assert.deepEqual(beta.items.map((p) => p.metadata?.name), ['beta-web']);

      kc.setCurrentContext('alpha');
      const name = `cn-${randomBytes(3).toString('hex')}`;
      const seen = new Promise<string>((resolve, reject) => {
        void new Watch(kc)
          .watch('/api/v1/namespaces/team-a/pods', { resourceVersion: String(alphaApi.resourceVersion()) }, (type, obj: { metadata?: { name?: string } }) => {
            if (obj.metadata?.name === name) resolve(type);
          }, (err) => err && reject(err))
          .then((ctl) => {
            // The watch is open once its response started (and it replays from the resourceVersion
            // taken before): create the pod now.
            alphaApi.createPod('team-a', name);
            void seen.finally(() => ctl.abort());
          }, reject);
      });
      assert.equal(await withDeadline(seen, 10_000, 'the client-node watch event'), 'ADDED');
    });
  });

  describe('refusals as Kubernetes Status objects', () => {
    it('no credentials → 401, no grant → 403, unknown cluster → 404', async () => {
      const none = await hubHttp('GET', '/k8s/clusters/alpha/api/v1/namespaces/team-a/pods');
      assert.equal(none.status, 401);
      assert.equal(JSON.parse(none.body).kind, 'Status');
      assert.equal(JSON.parse(none.body).reason, 'Unauthorized');

      const eve = await accessToken(hub, 'eve');
      const denied = await hubHttp('GET', '/k8s/clusters/alpha/api/v1/namespaces/team-a/pods', { Authorization: `Bearer ${eve}` });
      assert.equal(denied.status, 403);
      const status = JSON.parse(denied.body);
      assert.deepEqual([status.kind, status.apiVersion, status.status, status.reason, status.code], ['Status', 'v1', 'Failure', 'Forbidden', 403]);
      assert.match(status.message, /user "eve" has no grant for cluster alpha/);
      const eveKc = await kubeconfigFor('eve', ['--cluster', 'alpha', '--user', 'eve']);
      const r = await kubectl(eveKc, ['get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Error from server \(Forbidden\): user "eve" has no grant for cluster alpha/);

      const unknown = await hubHttp('GET', '/k8s/clusters/nope/api', { Authorization: `Bearer ${hub.adminToken}` });
      assert.equal(unknown.status, 404);
      assert.deepEqual(JSON.parse(unknown.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'cluster "nope" is not known to this hub', reason: 'NotFound', code: 404 });
      await kubeAudit((r) => r.user === 'eve' && r.result === 'denied' && r.status === 403, 'the refused request');
    });

    it('the admin API is untouched next to the kube door', async () => {
      const who = await hubHttp('GET', '/api/v1/whoami', { Authorization: `Bearer ${hub.adminToken}` });
      assert.equal(who.status, 200);
      assert.equal(JSON.parse(who.body).user, 'admin');
      const api = await hubHttp('GET', '/api', { Authorization: `Bearer ${hub.adminToken}` });
      assert.equal(api.status, 404, 'a hub token on the API root is not a multikube request');
      assert.equal(JSON.parse(api.body).code, 'WARREN_E_NOT_FOUND');
    });
  });

  describe('multikube-style JWTs', () => {
    const jwt = (claims: Record<string, unknown>, key: KeyObject = jwtKey, exp = '5m') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(exp).sign(key);

    function multikubeKubeconfig(name: string, token: string): string {
      return writeKubeconfig(name, YAML.stringify({
        apiVersion: 'v1', kind: 'Config',
        clusters: [{ name: 'multikube', cluster: { server: hub.url, 'certificate-authority-data': Buffer.from(hubCa).toString('base64') } }],
        users: [{ name: 'jwt', user: { token } }],
        contexts: [{ name: 'multikube', context: { cluster: 'multikube', user: 'jwt' } }],
        'current-context': 'multikube',
      }));
    }

    it('routes a request to the API root by the ctx claim and impersonates sub and groups as jwt:NAME', async () => {
      const token = await jwt({ sub: 'dev', ctx: 'alpha', groups: ['devs', 'warren:admins'] });
      const kc = multikubeKubeconfig('jwt-alpha', token);
      const m = mark(alphaApi);
      const r = await kubectl(kc, ['get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^pod\/web-1$/m);
      const seen = since(alphaApi, m, (q) => q.path === '/api/v1/namespaces/team-a/pods')[0];
      assert.equal(seen?.user, 'jwt:dev');
      assert.deepEqual(seen?.impersonatedGroups, ['jwt:devs'], 'a hub-internal group (warren:admins) from an external token is dropped');
      const toBeta = multikubeKubeconfig('jwt-beta', await jwt({ sub: 'dev', ctx: 'beta', groups: ['devs'] }));
      const beta = await kubectl(toBeta, ['get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.equal(beta.stdout.trim(), 'pod/beta-web', beta.stderr);
    });

    it('unknown ctx → 404 ContextNotFound; a foreign signature or an expired token → 401', async () => {
      const unknown = await hubHttp('GET', '/api', { Authorization: `Bearer ${await jwt({ sub: 'dev', ctx: 'nowhere' })}` });
      assert.equal(unknown.status, 404);
      assert.deepEqual(JSON.parse(unknown.body), {
        kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'context "nowhere" not found', reason: 'ContextNotFound', code: 404,
      });
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const forged = await hubHttp('GET', '/api/v1/namespaces/team-a/pods', { Authorization: `Bearer ${await jwt({ sub: 'dev', ctx: 'alpha' }, other)}` });
      assert.equal(forged.status, 401);
      assert.equal(JSON.parse(forged.body).reason, 'Unauthorized');
      const expired = await new SignJWT({ sub: 'dev', ctx: 'alpha' }).setProtectedHeader({ alg: 'RS256' }).setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 600).sign(jwtKey);
      const late = await hubHttp('GET', '/apis', { Authorization: `Bearer ${expired}` });
      assert.equal(late.status, 401);
      assert.match(JSON.parse(late.body).message, /expired/);
      const kc = multikubeKubeconfig('jwt-nowhere', await jwt({ sub: 'dev', ctx: 'nowhere' }));
      const r = await kubectl(kc, ['get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /context "nowhere" not found/);
    });

    it('the same JWT works on /k8s/clusters/NAME but not at the admin API (no --jwt-doors api)', async () => {
      const token = await jwt({ sub: 'dev', groups: ['devs'] });
      const r = await hubHttp('GET', '/k8s/clusters/beta/api/v1/namespaces/team-a/pods', { Authorization: `Bearer ${token}` });
      assert.equal(r.status, 200, r.body);
      const who = await hubHttp('GET', '/api/v1/whoami', { Authorization: `Bearer ${token}` });
      assert.equal(who.status, 401, who.body);
      const refusal = JSON.parse(who.body) as { code: string; message: string };
      assert.equal(refusal.code, 'WARREN_E_UNAUTHENTICATED');
      assert.equal(refusal.message, "external JWTs are not accepted at the api door (the hub accepts them at: kube); an operator can add api to the hub's --jwt-doors");
    });
  });

  describe('agents come and go', () => {
    it('new streams spread over both agents of a cluster', async () => {
      const before = (await kubeAudit(() => true, 'any row')).at(-1)?.id ?? 0;
      const opened: http.ClientRequest[] = [];
      await Promise.all(
        Array.from({ length: 8 }, () =>
          new Promise<void>((resolve, reject) => {
            const req = https.request(`${hub.url}/k8s/clusters/alpha/api/v1/namespaces/team-a/pods?watch=true`, {
              headers: { Authorization: `Bearer ${devToken}` }, ca: hubCa, agent: false,
            }, (res) => {
              assert.equal(res.statusCode, 200);
              res.resume();
              resolve();
            });
            req.on('error', reject);
            req.end();
            opened.push(req);
          }),
        ),
      );
      for (const req of opened) req.destroy();
      const rows = await kubeAudit((r) => r.id > before && r.user === 'dev' && r.verb === 'watch', 'eight watches', 8);
      assert.deepEqual([...new Set(rows.map((r) => r.agent))].sort(), ['alpha-1', 'alpha-2']);
    });

    // Regression: pooled streams to an agent that was just killed were handed out again, and the next
    // requests failed with "the tunnel to cluster … failed during the request" although another agent
    // served the cluster (every rollout of the agent Deployment did this to its users).
    for (const how of ['SIGKILL', 'SIGTERM'] as const) {
      it(`killing one of a cluster's agents (${how}) during a stream of requests fails none of them`, async () => {
        // A cluster of its own, so that the hub's pool of kube streams starts empty and spreads over both.
        const cluster = `omega-${how.toLowerCase()}`;
        await startKubeAgent(`${cluster}-1`, cluster, alphaApi);
        const victim = await startKubeAgent(`${cluster}-2`, cluster, alphaApi);
        const client = new https.Agent({ keepAlive: true, ca: hubCa, maxSockets: 6 });
        let ok = 0;
        const failures: string[] = [];
        let killed = false;
        let afterKill = 0;
        // What each request still waiting has seen, for the report should one never end.
        const pending = new Map<number, { started: number; seen: string }>();
        let n = 0;
        const get = () =>
          new Promise<void>((resolve) => {
            const id = n++;
            const state = { started: Date.now(), seen: killed ? 'sent after the kill' : 'sent before the kill' };
            pending.set(id, state);
            const done = () => (pending.delete(id), resolve());
            const req = https.get(`${hub.url}/k8s/clusters/${cluster}/api/v1/namespaces/team-a/pods`, { headers: { Authorization: `Bearer ${devToken}` }, agent: client }, (res) => {
              state.seen += `, answer ${res.statusCode} ${res.headers['content-length'] ?? '(no length)'}`;
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => {
                if (res.statusCode === 200 && body.includes('web-1')) ok++;
                else failures.push(`${res.statusCode}: ${body.slice(0, 200)}`);
                if (killed) afterKill++;
                done();
              });
              // An answer cut after its head ends with 'close' and no 'end'.
              res.on('close', () => res.complete || (failures.push(`${res.statusCode}: answer cut after ${body.length} bytes of it`), done()));
            });
            req.on('socket', (s: net.Socket) => (state.seen += `, on a ${s.connecting ? 'new' : 'reused'} connection`));
            req.on('error', (err) => (failures.push(err.message), done()));
          });
        let stop = false;
        const workers = Array.from({ length: 6 }, async () => {
          while (!stop && (!killed || afterKill < 120)) await get();
        });
        try {
          // Kill once the victim has answered requests, so that streams to it sit in the hub's pool.
          await kubeAudit((r) => r.agent === victim.options.name && r.user === 'dev', `a request served by ${victim.options.name}`);
          victim.child.kill(how);
          killed = true;
          await withDeadline(Promise.all(workers), 60_000, '120 requests after the kill').catch((err: unknown) => {
            const waiting = [...pending.values()].map((p) => `${p.seen}, ${Date.now() - p.started} ms ago`);
            const warnings = (c: AgentProc | HubProc) => outputTail(c.child, 6, /"level":(40|50|60)/).join(' | ');
            throw new Error(`${(err as Error).message}; ${afterKill} done after the kill; still waiting: ${waiting.join('; ')}; hub: ${warnings(hub)}; victim: ${warnings(victim)}`);
          });
        } finally {
          stop = true;
          client.destroy();
        }
        assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} requests failed`);
        // A SIGTERMed agent drains (10 s at most): the hub closes its pooled streams to it once their
        // requests are answered, so it is done, and exits, long before that.
        await waitForExit(victim.child, how === 'SIGTERM' ? 5_000 : 15_000);
      });
    }

    it('a POST in flight when its agent dies is answered 503 with Retry-After; the next kubectl runs are served by the other agent', async () => {
      // Each agent of this cluster fronts an API server of its own, so the one holding the POST shows
      // which agent carries it.
      const cluster = 'omega-post';
      const members = new Map<FakeApiserver, AgentProc>([
        [alphaApi, await startKubeAgent(`${cluster}-1`, cluster, alphaApi)],
        [betaApi, await startKubeAgent(`${cluster}-2`, cluster, betaApi)],
      ]);
      const marks = new Map([...members.keys()].map((api) => [api, mark(api)] as const));
      const body = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'in-flight' }, spec: { containers: [{ name: 'main', image: 'busybox' }] } });
      const post = https.request(`${hub.url}/k8s/clusters/${cluster}/api/v1/namespaces/team-a/pods`, {
        method: 'POST', headers: { Authorization: `Bearer ${devToken}`, 'Content-Type': 'application/json' }, ca: hubCa, agent: false,
      });
      const answer = new Promise<Http>((resolve, reject) => {
        post.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        });
        post.on('error', reject);
      });
      // Half the body: the member API server has the request and waits for the rest, which never comes.
      post.write(body.slice(0, body.length / 2));
      const holder = await withDeadline(
        (async () => {
          for (;;) {
            const api = [...members.keys()].find((x) => since(x, marks.get(x)!, (q) => q.method === 'POST' && q.status === 0).length > 0);
            if (api) return api;
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
        10_000,
        'the POST reaching a member API server',
      );
      const survivor = holder === alphaApi ? betaApi : alphaApi;
      members.get(holder)!.child.kill('SIGKILL');
      const res = await withDeadline(answer, 10_000, 'the answer to the POST');
      post.destroy();
      assert.equal(res.status, 503, res.body);
      assert.equal(res.headers['retry-after'], '1', 'client-go retries a 503 that carries Retry-After');
      assert.deepEqual(JSON.parse(res.body), {
        kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `the tunnel to cluster ${cluster} failed during the request; retry it`, reason: 'ServiceUnavailable', code: 503,
      });

      // Right after the kill (discovery, then the list), with the dead agent's pooled streams still fresh.
      const kc = await kubeconfigFor(cluster, ['--cluster', cluster, '--user', 'dev']);
      const afterKill = mark(survivor);
      for (let i = 0; i < 3; i++) {
        const r = await kubectl(kc, ['get', 'pods', '-n', 'team-a', '-o', 'name']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^pod\//m);
      }
      assert.equal(since(survivor, afterKill, (q) => q.verb === 'list' && q.user === 'dev').length, 3);
    });

    it('when one agent of a cluster leaves, requests go to the other', async () => {
      await procs.kill(agents.get('alpha-2')!.child);
      for (let i = 0; i < 5; i++) {
        const r = await kubectl(devKc, ['get', 'pods', '-n', 'team-a', '-o', 'name']);
        assert.equal(r.code, 0, r.stderr);
      }
    });

    it('a cluster without a connected agent answers the 503 Status, which kubectl prints', async () => {
      // Used once while up, so kubectl's discovery cache (6 h) is warm, as for anyone who used the cluster.
      const warm = await kubectl(devKc, ['--context', 'gamma', 'get', 'pods', '-n', 'team-a', '-o', 'name']);
      assert.equal(warm.stdout.trim(), 'pod/beta-web', warm.stderr);
      await procs.kill(agents.get('gamma-1')!.child);
      const raw = await hubHttp('GET', '/k8s/clusters/gamma/api/v1/namespaces/team-a/pods', { Authorization: `Bearer ${devToken}` });
      assert.equal(raw.status, 503);
      assert.deepEqual(JSON.parse(raw.body), {
        kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'cluster gamma has no connected agent', reason: 'ServiceUnavailable', code: 503,
      });
      assert.equal(raw.headers['retry-after'], undefined, 'no Retry-After: client-go would retry ten times');
      const r = await kubectl(devKc, ['--context', 'gamma', 'get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim(), 'Error from server (ServiceUnavailable): cluster gamma has no connected agent');
      // A first contact (cold discovery cache): kubectl's discovery prints a generic error, and the
      // Status message as a warning.
      const cold = await run('kubectl', ['--kubeconfig', devKc, '--cache-dir', tempDir('cold-cache'), '--context', 'gamma', 'get', 'pods', '-n', 'team-a'], { env: kubectlEnv(), timeoutMs: 30_000 });
      assert.equal(cold.code, 1);
      assert.match(cold.stderr, /^Warning: cluster gamma has no connected agent$/m);
    });
  });

  describe('installing agents', () => {
    it('`warren agent manifest` creates a join token an agent with --token-file joins with; health follows the tunnel', async () => {
      const r = await cli(hub, ['agent', 'manifest', '--cluster', 'delta', '--image', 'registry.local/warren:test']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /created join token \S+ \(uses: unlimited/);
      const docs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; stringData?: Record<string, string>; spec?: { template: { spec: { containers: { image: string; command: string[] }[] } } } });
      assert.deepEqual(docs.map((d) => d.kind), ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Secret', 'Secret', 'Role', 'RoleBinding', 'StatefulSet']);
      const container = docs.find((d) => d.kind === 'StatefulSet')!.spec!.template.spec.containers[0]!;
      assert.equal(container.image, 'registry.local/warren:test');
      assert.deepEqual(container.command.slice(0, 6), ['warren', 'agent', '--kube', 'in-cluster', '--cluster', 'delta']);

      const tokenFile = path.join(dir, 'join-token');
      fs.writeFileSync(tokenFile, docs.find((d) => d.kind === 'Secret' && d.stringData)!.stringData!['join-token']!);
      const kc = path.join(dir, 'agent-delta.kubeconfig');
      fs.writeFileSync(kc, betaApi.kubeconfig('agent'));
      const dataDir = tempDir('agent-delta');
      const args = ['agent', '--name', 'delta-1', '--data-dir', dataDir, '--token-file', tokenFile, '--kube', kc, '--cluster', 'delta', '--health-listen', '127.0.0.1:0'];
      const agent = procs.spawn(process.execPath, [WARREN_BIN, ...args], { ipc: true, env: { ...process.env, WARREN_LOG_LEVEL: 'debug' } });
      const [, port] = await waitForLine(agent, /"healthListen":"127\.0\.0\.1:(\d+)"/, { timeoutMs: 20_000 });
      await waitForReady(agent, 20_000);
      const health = (p: string) => fetch(`http://127.0.0.1:${port}${p}`).then((res) => res.status);
      assert.equal(await health('/healthz'), 200);
      assert.equal(await health('/readyz'), 200);
      // Routed to delta's member cluster, whose RBAC knows no Warren admin: its own 403 comes back.
      const pods = await hubHttp('GET', '/k8s/clusters/delta/api/v1/namespaces/team-a/pods', { Authorization: `Bearer ${hub.adminToken}` });
      assert.equal(pods.status, 403, pods.body);
      assert.match(JSON.parse(pods.body).message, /User "admin" cannot list resource "pods" in API group "" in the namespace "team-a"/);
      const agentsList = await cliJson<{ name: string; labels: Record<string, string>; clusters: string[] }[]>(hub, ['agents', 'ls']);
      assert.deepEqual(agentsList.find((a) => a.name === 'delta-1')?.clusters, ['delta']);
      await procs.kill(agent);

      // The same identity pointed at a hub that is not there: alive, but not ready.
      const offline = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--data-dir', dataDir, '--hub', 'https://127.0.0.1:1', '--kube', kc, '--cluster', 'delta', '--health-listen', '127.0.0.1:0'], {
        env: { ...process.env, WARREN_LOG_LEVEL: 'debug' },
      });
      const [, port2] = await waitForLine(offline, /"healthListen":"127\.0\.0\.1:(\d+)"/, { timeoutMs: 20_000 });
      await waitForLine(offline, /waiting \S+ before dialling https:\/\/127\.0\.0\.1:1 again/, { timeoutMs: 20_000 });
      assert.equal((await fetch(`http://127.0.0.1:${port2}/healthz`)).status, 200);
      const ready = await fetch(`http://127.0.0.1:${port2}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), { status: 'tunnel down' });
      await procs.kill(offline);
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('an agent refuses a kubeconfig it cannot use, at start-up', async () => {
      const bad = path.join(dir, 'bad.kubeconfig');
      fs.writeFileSync(bad, 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
      const r = await run(process.execPath, [WARREN_BIN, 'agent', '--name', 'broken', '--data-dir', tempDir('broken'), '--token', 'wj1.x.y.z', '--kube', bad], { timeoutMs: 20_000 });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--kube .*bad\.kubeconfig: the current context names no cluster or no user \[WARREN_E_CONFIG\]/);
      const missing = await run(process.execPath, [WARREN_BIN, 'agent', '--name', 'broken', '--data-dir', tempDir('broken'), '--kube', path.join(dir, 'nope.yaml')], { timeoutMs: 20_000 });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no such kubeconfig file/);
    });
  });
});

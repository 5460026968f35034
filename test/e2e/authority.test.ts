// Acceptance: authority follows identity — an agent claims only what its join token gave it, user
// certificates are capped, data dirs are owner-only and a join-token use is spent only by a join.
//
// A real hub and real agents, run under umask 022 (the test process sets it; children inherit it):
//   - cluster takeover: agent A joined with `--clusters prod` serves prod; agent B joined with a
//     default token and `--cluster prod` is refused (exit 1, one line naming the claim and
//     --clusters), the refusal is audited as denied, and kube requests for prod all reach A's cluster
//   - route takeover: a default-token agent advertising 10.1.2.3/32 inside a legitimate agent's
//     10.1.0.0/16 is refused, and the router still picks the legitimate agent for 10.1.2.3
//   - name-glob capture: a token with --name-pattern 'dev-*' cannot join as prod-1 (and can as dev-1,
//     whose labels from the token win over its own)
//   - malformed or contradictory join-token authority is a 400 with WARREN_E_BAD_REQUEST
//   - `warren user-cert create --ttl 3650d` is refused naming the cap and --max-user-cert-ttl
//   - every file in the hub's and an agent's data dir is 0600, the dirs 0700
//   - a join with a bad CSR leaves the token's uses unchanged; the use then serves a real join, with the
//     token on the command line, which warns that it shows in ps
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RouteExplanation } from '../../src/hub/routeExplain.js';
import { waitForAudit } from '../support/audit.js';
import { startFakeApiserver, type FakeApiserver } from '../support/kube/apiserver.js';
import { ChildGroup, run, waitForExit, waitForLine, waitForReady, type ExitResult } from '../support/proc.js';
import { accessToken, cli, cliJson, joinToken, startAgent, startHub, tempDir, WARREN_BIN, type AgentProc, type HubProc } from '../support/warren.js';

interface Authority { name?: string; namePattern?: string; clusters: string[]; routes: string[] }
interface AgentView { name: string; connected: boolean; labels: Record<string, string>; clusters: string[]; routes: string[]; authority: Authority }

describe('agent authority, user-certificate cap, data-dir modes, join-token uses', () => {
  const procs = new ChildGroup();
  const dir = tempDir('authority');
  const dirs: string[] = [dir];
  let umask: number;
  let hub: HubProc;
  let apiA: FakeApiserver;
  let apiB: FakeApiserver;
  let prodA: AgentProc;

  function kubeconfigOf(name: string, api: FakeApiserver): string {
    const file = path.join(dir, `${name}.kubeconfig`);
    fs.writeFileSync(file, api.kubeconfig('agent'), { mode: 0o600 });
    return file;
  }

  /** Starts an agent that joins with `token` and must be refused: its exit, within a deadline. */
  async function refusedAgent(name: string, token: string, args: readonly string[]): Promise<ExitResult> {
    const dataDir = tempDir(`agent-${name}`);
    dirs.push(dataDir);
    const child = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--name', name, '--data-dir', dataDir, ...args], {
      env: { ...process.env, WARREN_LOG_LEVEL: 'debug', WARREN_JOIN_TOKEN: token },
    });
    return waitForExit(child, 30_000);
  }

  async function agentView(name: string): Promise<AgentView> {
    return cliJson<AgentView>(hub, ['agents', 'show', name]);
  }

  before(async () => {
    umask = process.umask(0o022);
    apiA = await startFakeApiserver();
    apiA.createPod('team-a', 'served-by-a');
    apiB = await startFakeApiserver();
    apiB.createPod('team-a', 'served-by-b');
    hub = await startHub({ group: procs });
    dirs.push(hub.dataDir);
    const token = await joinToken(hub, ['--clusters', 'prod']);
    prodA = await startAgent({ group: procs, hub, name: 'prod-a', token, args: ['--kube', kubeconfigOf('prod-a', apiA), '--cluster', 'prod'] });
    dirs.push(prodA.dataDir);
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    await apiA?.close();
    await apiB?.close();
    process.umask(umask);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('cluster takeover: a second agent whose token does not allow "prod" is refused, audited, and prod traffic stays with the first', async () => {
    const refused = await refusedAgent('intruder', await joinToken(hub), ['--kube', kubeconfigOf('intruder', apiB), '--cluster', 'prod']);
    assert.equal(refused.code, 1, refused.stderr);
    const line = 'agent "intruder" may not serve cluster "prod": its join token does not allow it (create one with warren join-token create --clusters prod)';
    assert.ok(refused.stderr.includes(line), refused.stderr);
    assert.match(refused.stderr, /WARREN_E_AGENT_CLAIM_DENIED/);

    const row = await waitForAudit(hub, (r) => r.agent === 'intruder' && r.result === 'denied', 'the denied admission of intruder', 10_000, 'agent');
    assert.ok(row.reason?.includes(line), row.reason ?? '');

    const intruder = await agentView('intruder');
    assert.equal(intruder.connected, false);
    assert.deepEqual(intruder.authority, { clusters: [], routes: [] });
    const a = await agentView('prod-a');
    assert.deepEqual(a.authority, { clusters: ['prod'], routes: [] });
    assert.deepEqual(a.clusters, ['prod']);

    assert.equal((await cli(hub, ['grant', '--user', 'dev', '--cluster', 'prod'])).code, 0);
    const dev = await accessToken(hub, 'dev');
    const beforeB = apiB.requests.filter((r) => r.path.includes('/pods')).length;
    for (let i = 0; i < 6; i++) {
      const r = await run('curl', ['-sS', '--max-time', '20', '--cacert', hub.caPath, '-H', `Authorization: Bearer ${dev}`, '-w', '\n%{http_code}', `${hub.url}/k8s/clusters/prod/api/v1/namespaces/team-a/pods`], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\n200$/, r.stdout);
      assert.ok(r.stdout.includes('served-by-a') && !r.stdout.includes('served-by-b'), `request ${i} reached another cluster: ${r.stdout.slice(0, 300)}`);
    }
    assert.equal(apiB.requests.filter((r) => r.path.includes('/pods')).length, beforeB, "the intruder's cluster got pod requests");
  });

  it('route takeover: an agent advertising 10.1.2.3/32 with a default token is refused; the router keeps the legitimate /16', async () => {
    const legit = await startAgent({ group: procs, hub, name: 'gw-legit', token: await joinToken(hub, ['--routes', '10.1.0.0/16']), args: ['--route', '10.1.0.0/16'] });
    dirs.push(legit.dataDir);
    const refused = await refusedAgent('gw-evil', await joinToken(hub), ['--route', '10.1.2.3/32']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.ok(
      refused.stderr.includes('agent "gw-evil" may not serve route "10.1.2.3/32": its join token does not allow it (create one with warren join-token create --routes 10.1.2.3/32)'),
      refused.stderr,
    );
    await waitForAudit(hub, (r) => r.agent === 'gw-evil' && r.result === 'denied' && Boolean(r.reason?.includes('route "10.1.2.3/32"')), 'the denied admission of gw-evil', 10_000, 'agent');

    const e = await cliJson<RouteExplanation>(hub, ['route', 'explain', '10.1.2.3:80']);
    assert.equal(e.agent, 'gw-legit');
    assert.equal(e.route, '10.1.0.0/16');
    assert.deepEqual(e.candidates.map((c) => c.agent), ['gw-legit']);
  });

  it("name-glob capture: a token for 'dev-*' cannot join as prod-1, and the refused join spends no use", async () => {
    const created = await cliJson<{ token: string; id: string }>(hub, ['join-token', 'create', '--name-pattern', 'dev-*', '--labels', 'team=dev']);
    const refused = await refusedAgent('prod-1', created.token, []);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /agent name "prod-1" is not allowed by this join token \(it allows only names matching "dev-\*"\)/);
    assert.equal((await cli(hub, ['agents', 'show', 'prod-1'])).code, 1);
    const tokens = await cliJson<Array<{ id: string; used: number }>>(hub, ['join-token', 'ls']);
    assert.equal(tokens.find((t) => t.id === created.id)?.used, 0);

    const dev = await startAgent({ group: procs, hub, name: 'dev-1', token: created.token, args: ['--labels', 'team=ops,extra=1'] });
    dirs.push(dev.dataDir);
    const view = await agentView('dev-1');
    assert.deepEqual(view.authority, { namePattern: 'dev-*', clusters: [], routes: [] });
    // The admin's token labels win over what the agent sends.
    assert.deepEqual(view.labels, { team: 'dev', extra: '1' });
  });

  it('join-token authority that is malformed or contradictory is refused: 400 WARREN_E_BAD_REQUEST from the API, exit 2 from the CLI', async () => {
    for (const [body, field] of [
      [{ name: 'a', namePattern: 'a*' }, 'namePattern'],
      [{ name: 'Not_A_Label' }, 'name'],
      [{ clusters: ['Prod_1'] }, 'clusters.0'],
      [{ routes: ['10.0.0.0/33'] }, 'routes.0'],
      [{ routes: ['corp.internal'] }, 'routes.0'],
    ] as const) {
      const r = await run('curl', ['-sS', '--max-time', '20', '--cacert', hub.caPath, '-H', `Authorization: Bearer ${hub.adminToken}`, '-H', 'content-type: application/json',
        '--data-binary', JSON.stringify(body), '-w', '\n%{http_code}', `${hub.url}/api/v1/join-tokens`], { timeoutMs: 30_000 });
      assert.match(r.stdout, /\n400$/, `${JSON.stringify(body)}: ${r.stdout}`);
      const err = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf('\n'))) as { code: string; field: string };
      assert.deepEqual([err.code, err.field], ['WARREN_E_BAD_REQUEST', field], JSON.stringify(body));
    }
    const both = await cli(hub, ['join-token', 'create', '--name', 'a', '--name-pattern', 'a*']);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /--name and --name-pattern are alternatives/);
    const route = await cli(hub, ['join-token', 'create', '--routes', '10.1.0.0/16,bogus']);
    assert.equal(route.code, 2, route.stderr);
    assert.match(route.stderr, /^error: routes\.1: routes are CIDRs /);
  });

  it('user-cert create --ttl 3650d is refused naming the cap and the hub flag; 7d is issued', async () => {
    const prefix = path.join(dir, 'ci');
    const long = await cli(hub, ['user-cert', 'create', '--user', 'ci', '--ttl', '3650d', '--out', prefix]);
    assert.equal(long.code, 2, long.stderr);
    assert.match(long.stderr, /^error: ttl 3650d exceeds this hub's cap of 7d .*--max-user-cert-ttl/);
    assert.equal(fs.existsSync(`${prefix}.crt`), false);
    const ok = await cli(hub, ['user-cert', 'create', '--user', 'ci', '--ttl', '7d', '--out', prefix]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.readFileSync(`${prefix}.crt`, 'utf8').includes('BEGIN CERTIFICATE'));
  });

  it('under umask 022 every file in the hub and agent data dirs is 0600 and the dirs 0700', async () => {
    /** Every path below `root` with its mode, dirs included. */
    const walk = (root: string): Array<[string, number, boolean]> =>
      fs.readdirSync(root, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(root, e.name);
        const entry: [string, number, boolean] = [p, fs.statSync(p).mode & 0o777, e.isDirectory()];
        return e.isDirectory() ? [entry, ...walk(p)] : [entry];
      });
    for (const root of [hub.dataDir, prodA.dataDir]) {
      assert.equal(fs.statSync(root).mode & 0o777, 0o700, root);
      for (const [p, mode, isDir] of walk(root)) assert.equal(mode, isDir ? 0o700 : 0o600, `${p} is ${mode.toString(8)}`);
    }
    const hubFiles = walk(hub.dataDir).map(([p]) => path.basename(p));
    for (const f of ['warren.db', 'warren.db-wal', 'warren.db-shm', 'admin.token', 'ca.key', 'ca.crt', 'hub.key', 'signing.key']) assert.ok(hubFiles.includes(f), `${f} in ${hubFiles.join(',')}`);
    const agentFiles = walk(prodA.dataDir).map(([p]) => path.basename(p));
    for (const f of ['agent.key', 'agent.crt', 'ca.crt', 'identity.json']) assert.ok(agentFiles.includes(f), `${f} in ${agentFiles.join(',')}`);
  });

  it('a join with a bad CSR leaves the join token uses unchanged; the use then serves a real join', async () => {
    const created = await cliJson<{ token: string; id: string; command: string }>(hub, ['join-token', 'create', '--uses', '1', '--name', 'csr-test']);
    // The printed command keeps the token out of argv (and so out of ps).
    assert.equal(created.command, `WARREN_JOIN_TOKEN=${created.token} warren agent --name csr-test`);
    const body = JSON.stringify({ token: created.token, name: 'csr-test', csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', labels: {} });
    const r = await run('curl', ['-sS', '--max-time', '20', '--cacert', hub.caPath, '-H', 'content-type: application/json', '--data-binary', '@-', '-w', '\n%{http_code}', `${hub.url}/api/v1/join`], { input: body, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"code":"WARREN_E_BAD_REQUEST".*\n400$/s);
    const tokens = await cliJson<Array<{ id: string; uses: number; used: number }>>(hub, ['join-token', 'ls']);
    assert.deepEqual(tokens.filter((t) => t.id === created.id).map((t) => [t.uses, t.used]), [[1, 0]]);
    assert.equal((await cli(hub, ['agents', 'show', 'csr-test'])).code, 1);

    // The token on the command line still works, with a warning naming the alternatives.
    const dataDir = tempDir('agent-csr-test');
    dirs.push(dataDir);
    const agent = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--name', 'csr-test', '--data-dir', dataDir, '--token', created.token], { ipc: true, env: { ...process.env, WARREN_LOG_LEVEL: 'debug' } });
    await waitForLine(agent, /^warning: --token puts the join token in the process list \(ps\).*use --token-file FILE or the WARREN_JOIN_TOKEN environment variable$/, { timeoutMs: 20_000, stream: 'stderr' });
    await waitForReady(agent, 20_000);
    const after1 = await cliJson<Array<{ id: string; used: number }>>(hub, ['join-token', 'ls']);
    assert.equal(after1.find((t) => t.id === created.id)?.used, 1);
  });
});

/**
 * `node --import tsx bench/kube.ts` (after `npm run build`): what the Kubernetes door adds to kubectl.
 *
 * One kube-apiserver stand-in (test/support/kube/apiserver.ts) holding BENCH_KUBE_OBJECTS pods
 * (default 1,000) in one namespace; a hub and one agent (`--kube`) in front of it, at log level info,
 * with the V8 flags they are deployed with (bench/lib/warrenProcs.ts `warrenCommand`).
 * The same `kubectl get pods -n bench` (server-side Table, warm discovery cache) runs directly against
 * the stand-in and through Warren, in turns (direct, warren, direct, …) so drift hits both alike; each
 * figure is the median of BENCH_KUBE_REPEATS runs (default 15). The added time is printed against the
 * 20 % target. Two more rows separate kubectl's own start-up from the proxy: `-o json` (the full
 * objects, a bigger body), and the list fetched from this process over a kept-alive HTTPS connection.
 * Then BENCH_KUBE_LOOP (default 2,000) such kept-alive requests each way after as many to warm up, for
 * the latency a busy client sees and the hub's and agent's CPU per request (from /proc): what bounds
 * how many kube requests one hub serves.
 *
 * Direct, kubectl authenticates as the stand-in's admin; through Warren as a user whose cluster grant
 * adds the group cluster-admins, impersonated by the agent: both see every pod.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startFakeApiserver } from '../test/support/kube/apiserver.js';
import { ChildGroup, run, runOk } from '../test/support/proc.js';
import { accessToken, cli, startAgent, startHub, tempDir } from '../test/support/warren.js';
import { warrenCommand } from './lib/warrenProcs.js';
import { cpuSeconds } from './lib/procstat.js';
import { fmt, markdownTable, median, percentile } from './lib/stats.js';

const OBJECTS = Number(process.env.BENCH_KUBE_OBJECTS ?? 1000);
const REPEATS = Number(process.env.BENCH_KUBE_REPEATS ?? 15);
const LOOP = Number(process.env.BENCH_KUBE_LOOP ?? 2000);
const TARGET_ADDED = 0.2;

const procs = new ChildGroup();
const dir = tempDir('bench-kube');

async function main(): Promise<void> {
  const api = await startFakeApiserver();
  api.createNamespace('bench');
  for (let i = 0; i < OBJECTS; i++) api.createPod('bench', `pod-${String(i).padStart(5, '0')}`);

  const env = { WARREN_LOG_LEVEL: 'info' };
  const hub = await startHub({ group: procs, env, command: warrenCommand('hub') });
  const agentKc = path.join(dir, 'agent.kubeconfig');
  fs.writeFileSync(agentKc, api.kubeconfig('agent'));
  const agent = await startAgent({ group: procs, hub, command: warrenCommand('agent'), name: 'bench-1', args: ['--kube', agentKc, '--cluster', 'bench'], env });
  const grant = await cli(hub, ['grant', '--user', 'bencher', '--cluster', 'bench', '--kube-groups', 'cluster-admins']);
  if (grant.code !== 0) throw new Error(grant.stderr);
  const token = await accessToken(hub, 'bencher');
  const viaKc = path.join(dir, 'warren.kubeconfig');
  const made = await cli(hub, ['kubeconfig', '--cluster', 'bench'], { token });
  if (made.code !== 0) throw new Error(made.stderr);
  fs.writeFileSync(viaKc, made.stdout);
  const directKc = path.join(dir, 'direct.kubeconfig');
  fs.writeFileSync(directKc, api.kubeconfig('admin'));

  const kubectlEnv = { ...process.env, HOME: dir, KUBECONFIG: '' };
  const kubectl = async (kc: string, args: readonly string[]): Promise<number> => {
    const t0 = performance.now();
    const r = await run('kubectl', ['--kubeconfig', kc, '--cache-dir', path.join(dir, 'cache'), ...args], { env: kubectlEnv, timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return ms;
  };
  // Same answer both ways, and warm discovery caches for both servers.
  const check = async (kc: string) => (await runOk('kubectl', ['--kubeconfig', kc, '--cache-dir', path.join(dir, 'cache'), 'get', 'pods', '-n', 'bench', '-o', 'name'], { env: kubectlEnv })).stdout.trim().split('\n').length;
  const [nDirect, nVia] = [await check(directKc), await check(viaKc)];
  if (nDirect !== OBJECTS || nVia !== OBJECTS) throw new Error(`expected ${OBJECTS} pods both ways, got ${nDirect} direct and ${nVia} through Warren`);

  const hubCa = fs.readFileSync(hub.caPath, 'utf8');
  const listOver = (agent: https.Agent, url: string, auth: string) => async (): Promise<number> => {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      https.get(url, { agent, headers: { authorization: `Bearer ${auth}`, accept: 'application/json' } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        res.on('data', () => undefined);
        res.on('end', resolve);
      }).on('error', reject);
    });
    return performance.now() - t0;
  };
  const directAgent = new https.Agent({ keepAlive: true, ca: api.caPem });
  const viaAgent = new https.Agent({ keepAlive: true, ca: hubCa });

  // Also run in a loop below.
  const kept = {
    name: `GET pod list, JSON, kept-alive HTTPS`,
    direct: listOver(directAgent, `${api.url}/api/v1/namespaces/bench/pods`, api.adminToken),
    via: listOver(viaAgent, `${hub.url}/k8s/clusters/bench/api/v1/namespaces/bench/pods`, token),
  };
  const cases: Array<{ name: string; direct: () => Promise<number>; via: () => Promise<number> }> = [
    { name: `kubectl get pods (${OBJECTS}, table)`, direct: () => kubectl(directKc, ['get', 'pods', '-n', 'bench']), via: () => kubectl(viaKc, ['get', 'pods', '-n', 'bench']) },
    { name: `kubectl get pods -o json (${OBJECTS})`, direct: () => kubectl(directKc, ['get', 'pods', '-n', 'bench', '-o', 'json']), via: () => kubectl(viaKc, ['get', 'pods', '-n', 'bench', '-o', 'json']) },
    kept,
  ];

  const rows: string[][] = [];
  let headline: { added: number; pct: number } | undefined;
  for (const c of cases) {
    await c.direct();
    await c.via();
    const d: number[] = [];
    const v: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      d.push(await c.direct());
      v.push(await c.via());
    }
    const md = median(d);
    const mv = median(v);
    const added = mv - md;
    headline ??= { added, pct: added / md };
    rows.push([c.name, fmt(md, 1), fmt(mv, 1), fmt(added, 1), `${fmt((added / md) * 100, 1)} %`]);
  }

  // The kept-alive request in a loop, each way: latency and, through Warren, CPU per request.
  const pids = [hub.child.pid!, agent.child.pid!];
  const loop = async (f: () => Promise<number>) => {
    for (let i = 0; i < LOOP; i++) await f();
    const cpu0 = pids.map(cpuSeconds);
    const ms: number[] = [];
    for (let i = 0; i < LOOP; i++) ms.push(await f());
    ms.sort((a, b) => a - b);
    const [hubUs, agentUs] = pids.map((pid, j) => ((cpuSeconds(pid) - cpu0[j]!) / LOOP) * 1e6);
    return { ms, hubUs: hubUs!, agentUs: agentUs! };
  };
  const direct = await loop(kept.direct);
  const via = await loop(kept.via);
  directAgent.destroy();
  viaAgent.destroy();

  process.stdout.write(`\nKubernetes door: ${OBJECTS} pods, median of ${REPEATS} runs each, milliseconds\n\n`);
  process.stdout.write(markdownTable(['request', 'direct', 'through Warren', 'added', 'added %'], rows) + '\n\n');
  process.stdout.write(`${kept.name}, ${LOOP} in a row after ${LOOP} to warm up: p50 / p99 direct ${fmt(median(direct.ms), 2)} / ${fmt(percentile(direct.ms, 0.99), 2)} ms, `
    + `through Warren ${fmt(median(via.ms), 2)} / ${fmt(percentile(via.ms, 0.99), 2)} ms; CPU per request through Warren: hub ${fmt(via.hubUs, 0)} µs, agent ${fmt(via.agentUs, 0)} µs\n`);
  const ok = headline!.pct <= TARGET_ADDED;
  process.stdout.write(`kubectl get of ${OBJECTS} objects: +${fmt(headline!.added, 1)} ms (${fmt(headline!.pct * 100, 1)} %) through Warren; target ≤ ${TARGET_ADDED * 100} %: ${ok ? 'met' : 'NOT met'}\n`);
  await api.close();
}

try {
  await main();
} finally {
  await procs.killAll();
  procs.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

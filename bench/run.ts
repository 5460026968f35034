/**
 * `npm run bench [-- --quick] [-- --out FILE]`: one run, one table. Baselines (direct TCP, a plain Node
 * relay hop, OpenSSH `ssh -R`) and Warren's paths are all started, then measured in turns — repeat 1 of
 * every path, then repeat 2, … — so drift on a shared machine hits every row alike; each cell is the
 * median of the repeats. Every Warren figure is read as a ratio to the baselines of the same run.
 *
 * Every path ends at the same target process (bench/lib/target.ts) and is driven by the same load
 * process (bench/lib/load.ts); see docs/benchmarks.md for the method.
 *
 * Bounds (env): BENCH_BYTES (per bulk test, default 1 GiB; quick 64 MiB), BENCH_SECONDS (cap per test,
 * default 10; quick 2), BENCH_REPEATS (default 3), BENCH_RTT_COUNT (default 5000; quick 1000),
 * BENCH_CONN_SECONDS (default 3; quick 0.75), BENCH_CONN_PARALLEL (default 8), BENCH_LONE_COUNT (one-at-a-time
 * connections per repeat, default 2000; quick 300; capped by BENCH_SECONDS), BENCH_ONLY (regex over row
 * names, to run a subset).
 */
import fs from 'node:fs';
import { ChildGroup } from '../test/support/proc.js';
import { startNodeScript } from './lib/nodeScript.js';
import { startSshd } from '../test/support/sshd.js';
import type { Endpoint } from './lib/endpoints.js';
import type { BulkResult, ConnsResult, LoneResult, RttResult } from './lib/load.js';
import { startLoadProcess } from './lib/loadClient.js';
import { ProcessGroupStat, cpuDelta } from './lib/procstat.js';
import { startSshReverse } from './lib/sshReverse.js';
import { benchUser, cliEnv, createHubForward, hasCliFeature, startBenchAgent, startBenchHub } from './lib/warrenProcs.js';
import { WARREN_BIN } from '../test/support/warren.js';
import { fmt, markdownTable, median, mib } from './lib/stats.js';
import { machineLine } from './lib/machine.js';

// ------------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outIndex = argv.indexOf('--out');
const outFile = outIndex >= 0 ? argv[outIndex + 1] : undefined;
const num = (name: string, full: number, q: number) => {
  const v = process.env[name];
  return v !== undefined && v !== '' ? Number(v) : quick ? q : full;
};
const BYTES = num('BENCH_BYTES', 1 << 30, 64 << 20);
const SECONDS = num('BENCH_SECONDS', 10, 2);
const REPEATS = num('BENCH_REPEATS', 3, 3);
const RTT_COUNT = num('BENCH_RTT_COUNT', 5000, 1000);
const CONN_SECONDS = num('BENCH_CONN_SECONDS', 3, 0.75);
const CONN_PARALLEL = num('BENCH_CONN_PARALLEL', 8, 8);
const LONE_COUNT = num('BENCH_LONE_COUNT', 2000, 300);
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY, 'i') : undefined;

// ------------------------------------------------------------------------------------------------
// Paths under test

interface Path {
  readonly name: string;
  readonly endpoint: Endpoint;
  /** The "hub" column: hub process, relay process, or sshd and its per-connection children. */
  readonly hub?: ProcessGroupStat;
  /** The "agent" column: warren agent, or the `ssh -R` client. */
  readonly agent?: ProcessGroupStat;
  /** Spawning a process per connection is slow: fewer workers, and fewer connections per bulk test. */
  readonly perConnectionProcess?: boolean;
  readonly role: 'direct' | 'relay' | 'ssh-aes' | 'ssh-aes-nodelay' | 'ssh-other' | 'warren-forward' | 'warren-connect-tls' | 'warren-other';
}

interface Measured {
  bulk1: BulkResult[];
  bulk8: BulkResult[];
  rtt: RttResult[];
  conns: ConnsResult[];
  lone: LoneResult[];
  /** Hub + agent CPU per connection of each conns test, µs. */
  connCpuUs: number[];
  cpuSeconds: number;
  cpuBytes: number;
  hubIdle: number;
  agentIdle: number;
  hubMax: number;
  agentMax: number;
}

const group = new ChildGroup();
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

async function setUp(): Promise<{ paths: Path[]; notes: string[] }> {
  const paths: Path[] = [];
  const notes: string[] = [];
  const want = (name: string) => !ONLY || ONLY.test(name);

  const target = await startNodeScript(group, 'bench/lib/target.ts', [], 'listening');
  const tport = target.port;
  paths.push({ name: 'direct TCP', role: 'direct', endpoint: { kind: 'tcp', host: '127.0.0.1', port: tport } });

  const relayName = 'plain Node TCP relay hop';
  if (want(relayName)) {
    const relay = await startNodeScript(group, 'bench/lib/relayHop.ts', [String(tport)], 'listening');
    paths.push({ name: relayName, role: 'relay', endpoint: { kind: 'tcp', host: '127.0.0.1', port: relay.port }, hub: new ProcessGroupStat([relay.child.pid!]) });
  }

  const sshVariants = [
    { name: 'OpenSSH ssh -R -N, aes128-gcm (Nagle on the SSH connection)', cipher: 'aes128-gcm@openssh.com', noSession: true, role: 'ssh-aes' as const },
    { name: 'OpenSSH ssh -R, aes128-gcm, TCP_NODELAY', cipher: 'aes128-gcm@openssh.com', noSession: false, role: 'ssh-aes-nodelay' as const },
    { name: 'OpenSSH ssh -R, chacha20-poly1305, TCP_NODELAY', cipher: 'chacha20-poly1305@openssh.com', noSession: false, role: 'ssh-other' as const },
  ];
  for (const v of sshVariants) {
    if (!want(v.name)) continue;
    // One sshd per variant, so its process tree holds only this variant's session.
    const sshd = await startSshd({ group, host: '127.0.0.1' });
    const r = await startSshReverse({ group, sshd, cipher: v.cipher, targetPort: tport, noSession: v.noSession });
    paths.push({
      name: v.name, role: v.role, endpoint: { kind: 'tcp', host: '127.0.0.1', port: r.listenPort },
      hub: new ProcessGroupStat([sshd.child.pid!], true), agent: new ProcessGroupStat([r.client.pid!]),
    });
  }

  // Warren: the real CLI hub and agent. The target goes to 127.0.0.1 through agent "bench", as ssh -R's does.
  const wTarget = `127.0.0.1.bench.warren:${tport}`;
  const hasForwards = await hasCliFeature(['forwards'], /create/);
  const hasUds = await hasCliFeature(['hub'], /--connect-uds/);
  const warrenNames = ['Warren, hub forward', 'Warren, CONNECT door (TLS)', 'Warren, CONNECT door (unix socket)', 'Warren, `warren connect` (stdin/stdout)'];
  if (warrenNames.some(want)) {
    const hub = await startBenchHub({ group, connectUds: hasUds });
    const token = await benchUser(hub, 'bench', 'bench');
    const agent = await startBenchAgent({ group, hub, name: 'bench' });
    const hubStat = new ProcessGroupStat([hub.child.pid!]);
    const agentStat = new ProcessGroupStat([agent.pid!]);
    const common = { hub: hubStat, agent: agentStat };
    if (hasForwards && want(warrenNames[0]!)) {
      const port = await createHubForward(hub, 'bench-forward', wTarget);
      paths.push({ name: warrenNames[0]!, role: 'warren-forward', endpoint: { kind: 'tcp', host: '127.0.0.1', port }, ...common });
    }
    if (want(warrenNames[1]!)) {
      paths.push({ name: warrenNames[1]!, role: 'warren-connect-tls', endpoint: { kind: 'connect', tls: { host: '127.0.0.1', port: hub.port, caPem: hub.caPem }, token, target: wTarget }, ...common });
    }
    if (hasUds && hub.udsPath && want(warrenNames[2]!)) {
      paths.push({ name: warrenNames[2]!, role: 'warren-other', endpoint: { kind: 'connect', uds: hub.udsPath, target: wTarget }, ...common });
    }
    if (want(warrenNames[3]!)) {
      paths.push({
        name: warrenNames[3]!, role: 'warren-other', perConnectionProcess: true,
        endpoint: { kind: 'exec', cmd: WARREN_BIN, args: ['connect', wTarget], env: cliEnv(hub, token) }, ...common,
      });
    }
    if (!hasForwards) notes.push('`warren forwards` does not exist in this build: the hub-forward row is the stand-in (bench/lib/forwardStandIn.ts: the real hub code plus a TCP listener that opens streams through the hub\'s Opener, as a forward does).');
    if (!hasUds) notes.push('`warren hub --connect-uds` does not exist in this build: no unix-socket row.');
  }
  const standInName = 'Warren, hub forward (stand-in)';
  if (!hasForwards && want(standInName)) {
    const hub = await startBenchHub({ group, standIn: { target: wTarget, user: 'bench' } });
    await benchUser(hub, 'bench', 'bench');
    const agent = await startBenchAgent({ group, hub, name: 'bench' });
    paths.push({
      name: standInName, role: 'warren-forward', endpoint: { kind: 'tcp', host: '127.0.0.1', port: hub.standInPort! },
      hub: new ProcessGroupStat([hub.child.pid!]), agent: new ProcessGroupStat([agent.pid!]),
    });
  }
  return { paths: paths.filter((p) => want(p.name)), notes };
}

// ------------------------------------------------------------------------------------------------
// The load process

const { load, close: closeLoad } = startLoadProcess();

/** Samples the max RSS of the path's processes while `work` runs. */
async function sampled<T>(p: Path, m: Measured, work: () => Promise<T>): Promise<T> {
  const sample = () => {
    if (p.hub) m.hubMax = Math.max(m.hubMax, p.hub.rss());
    if (p.agent) m.agentMax = Math.max(m.agentMax, p.agent.rss());
  };
  const timer = setInterval(sample, 100);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    sample();
  }
}

function cpuNow(p: Path): Map<number, number>[] {
  return [p.hub?.cpu() ?? new Map<number, number>(), p.agent?.cpu() ?? new Map<number, number>()];
}

/** A failed test leaves a gap in the row (and a line on stderr) rather than ending the run. */
async function attempt<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    log(`${what} failed: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

async function measureOnce(p: Path, m: Measured): Promise<void> {
  const bulkSeconds = p.perConnectionProcess ? SECONDS + 2 : SECONDS;
  for (const [key, conns] of [['bulk1', 1], ['bulk8', 8]] as const) {
    const before = cpuNow(p);
    const r = await attempt(`${p.name} ${key}`, () => sampled(p, m, () => load<BulkResult>(p.endpoint, { kind: 'bulk', conns, bytes: BYTES, seconds: bulkSeconds })));
    if (!r) continue;
    const after = cpuNow(p);
    m.cpuSeconds += cpuDelta(before[0]!, after[0]!) + cpuDelta(before[1]!, after[1]!);
    m.cpuBytes += r.bytes;
    m[key].push(r);
  }
  const rtt = await attempt(`${p.name} rtt`, () => sampled(p, m, () => load<RttResult>(p.endpoint, { kind: 'rtt', count: RTT_COUNT, seconds: SECONDS })));
  if (rtt) m.rtt.push(rtt);
  const loneCount = p.perConnectionProcess ? Math.min(LONE_COUNT, 50) : LONE_COUNT;
  const lone = await attempt(`${p.name} lone`, () => sampled(p, m, () => load<LoneResult>(p.endpoint, { kind: 'lone', count: loneCount, seconds: SECONDS })));
  if (lone) m.lone.push(lone);
  const parallel = p.perConnectionProcess ? Math.min(4, CONN_PARALLEL) : CONN_PARALLEL;
  const connSeconds = p.perConnectionProcess ? Math.max(CONN_SECONDS, 2) : CONN_SECONDS;
  const before = cpuNow(p);
  const conns = await attempt(`${p.name} conns`, () => sampled(p, m, () => load<ConnsResult>(p.endpoint, { kind: 'conns', parallel, seconds: connSeconds, max: 1_000_000 })));
  if (!conns) return;
  const after = cpuNow(p);
  m.conns.push(conns);
  if (conns.done > 0) m.connCpuUs.push(((cpuDelta(before[0]!, after[0]!) + cpuDelta(before[1]!, after[1]!)) / conns.done) * 1e6);
}

async function warmUp(p: Path): Promise<void> {
  await attempt(`${p.name} warm-up`, async () => {
    await load(p.endpoint, { kind: 'bulk', conns: 2, bytes: Math.min(BYTES, 32 << 20), seconds: 2 });
    await load(p.endpoint, { kind: 'rtt', count: 200, seconds: 1 });
    if (!p.perConnectionProcess) await load(p.endpoint, { kind: 'conns', parallel: CONN_PARALLEL, seconds: 0.3, max: 500 });
  });
}

// ------------------------------------------------------------------------------------------------
// Report

function report(paths: readonly Path[], results: Map<Path, Measured>, notes: readonly string[], started: Date, seconds: number): string {
  const rows = paths.map((p) => {
    const m = results.get(p)!;
    const incomplete = [...m.bulk1, ...m.bulk8].some((r) => !r.complete) ? '¹' : '';
    const errors = [...m.conns, ...m.lone].some((c) => c.errors > 0) ? '²' : '';
    const rss = (idle: number, max: number, has: boolean) => (has ? `${fmt(mib(idle))} / ${fmt(mib(max))}` : '–');
    return [
      p.name,
      fmt(median(m.bulk1.map((r) => r.mbps))) + incomplete,
      fmt(median(m.bulk8.map((r) => r.mbps))) + incomplete,
      fmt(median(m.rtt.map((r) => r.p50us))),
      fmt(median(m.rtt.map((r) => r.p99us))),
      fmt(median(m.conns.map((r) => r.perSecond))) + errors,
      `${fmt(median(m.lone.map((r) => r.p50us)))} / ${fmt(median(m.lone.map((r) => r.p99us)))}`,
      fmt(median(m.lone.map((r) => r.perSecond))),
      p.hub || p.agent ? fmt(median(m.connCpuUs)) : '–',
      p.hub || p.agent ? fmt(m.cpuSeconds / (m.cpuBytes / 2 ** 30), 2) : '–',
      rss(m.hubIdle, m.hubMax, Boolean(p.hub)),
      rss(m.agentIdle, m.agentMax, Boolean(p.agent)),
    ];
  });
  const header = ['path', 'bulk 1 conn MB/s', 'bulk 8 conns MB/s', '64 B RTT p50 µs', 'p99 µs', `new conns/s (${CONN_PARALLEL} parallel)`, 'lone new conn p50 / p99 µs', 'lone conns/s', 'CPU µs per new conn (hub+agent)', 'CPU s/GiB (hub+agent)', 'hub RSS idle / load MiB', 'agent RSS idle / load MiB'];
  const out: string[] = [];
  out.push(`Warren benchmark, ${started.toISOString()}${quick ? ' (--quick)' : ''}: ${machineLine()}`);
  out.push(`Bulk ${fmt(mib(BYTES))} MiB per test (download, target → client), cap ${SECONDS} s per test; RTT over ${RTT_COUNT} pings; new connections for ${CONN_SECONDS} s with ${CONN_PARALLEL} workers, and ${LONE_COUNT} one at a time (connect → 64 B echo: the latency; → close: conns/s); median of ${REPEATS} repeats; took ${fmt(seconds)} s.`);
  out.push('');
  out.push(markdownTable(header, rows));
  const foot: string[] = [];
  if (rows.some((r) => r[1]!.includes('¹'))) foot.push('¹ at least one bulk test hit its time cap or lost a connection: MB/s is over what arrived in time.');
  if (rows.some((r) => r[5]!.includes('²'))) {
    const first = paths.map((p) => [...results.get(p)!.conns, ...results.get(p)!.lone].find((c) => c.firstError)?.firstError).find(Boolean);
    foot.push(`² some connections failed (first error: ${first}).`);
  }
  foot.push(...notes);
  out.push('', ...foot);
  out.push('', ...targets(paths, results));
  return out.join('\n') + '\n';
}

/** The targets, as ratios to the baselines of this same run. */
function targets(paths: readonly Path[], results: Map<Path, Measured>): string[] {
  const by = (role: Path['role']) => paths.filter((p) => p.role === role).map((p) => results.get(p)!);
  const best = (ms: Measured[], f: (m: Measured) => number) => Math.max(...ms.map(f));
  const least = (ms: Measured[], f: (m: Measured) => number) => Math.min(...ms.map(f));
  const b1 = (m: Measured) => median(m.bulk1.map((r) => r.mbps));
  const b8 = (m: Measured) => median(m.bulk8.map((r) => r.mbps));
  const p50 = (m: Measured) => median(m.rtt.map((r) => r.p50us));
  const cps = (m: Measured) => median(m.conns.map((r) => r.perSecond));
  const p99 = (m: Measured) => median(m.rtt.map((r) => r.p99us));
  const lone50 = (m: Measured) => median(m.lone.map((r) => r.p50us));
  const direct = by('direct')[0];
  const relayHop = by('relay')[0];
  const sshAes = [...by('ssh-aes'), ...by('ssh-aes-nodelay')];
  const sshAll = [...sshAes, ...by('ssh-other')];
  const forward = by('warren-forward')[0];
  const door = by('warren-connect-tls')[0];
  const subject = forward ?? door;
  const subjectName = forward ? 'hub forward' : 'CONNECT door (TLS)';
  if (!subject || !direct || sshAes.length === 0) return [];
  const lines: string[] = [`Targets, through the ${subjectName}, against the best OpenSSH figure of this run:`, ''];
  const check = (ok: boolean) => (ok ? 'met' : '**missed**');
  const r1 = b1(subject) / best(sshAes, b1);
  const r8 = b8(subject) / best(sshAes, b8);
  const added = p50(subject) - p50(direct);
  const sshAdded = least(sshAll, p50) - p50(direct);
  const rows = [
    ['bulk 1 conn ≥ 1.2× OpenSSH aes128-gcm', `${r1.toFixed(2)}×`, check(r1 >= 1.2)],
    ['bulk 8 conns ≥ 1.2× OpenSSH aes128-gcm', `${r8.toFixed(2)}×`, check(r8 >= 1.2)],
    ['RTT added over direct ≤ what OpenSSH adds', `${fmt(added)} µs vs ${fmt(sshAdded)} µs`, check(added <= sshAdded)],
    ['RTT p99 ≤ 2× RTT p50', `${fmt(p99(subject))} vs ${fmt(p50(subject))} µs`, check(p99(subject) <= 2 * p50(subject))],
    [`≥ 2,000 new connections/s (${CONN_PARALLEL} parallel)`, fmt(cps(subject)), check(cps(subject) >= 2000)],
  ];
  if (relayHop) {
    const ratio = lone50(subject) / lone50(relayHop);
    rows.push(['lone new connection ≤ 2× a plain Node relay hop', `${fmt(lone50(subject))} vs ${fmt(lone50(relayHop))} µs: ${ratio.toFixed(2)}×`, check(ratio <= 2)]);
  }
  if (door && forward) {
    rows.push(['(CONNECT door, TLS: new connections/s)', fmt(cps(door)), '']);
    rows.push(['(CONNECT door, TLS: lone new connection p50, incl. its TLS handshake)', `${fmt(lone50(door))} µs`, '']);
  }
  lines.push(markdownTable(['target', 'this run', ''], rows));
  return lines;
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const t0 = Date.now();
  log(`setting up${quick ? ' (quick)' : ''}…`);
  const { paths, notes } = await setUp();
  const results = new Map<Path, Measured>();
  for (const p of paths) {
    results.set(p, {
      bulk1: [], bulk8: [], rtt: [], conns: [], lone: [], connCpuUs: [], cpuSeconds: 0, cpuBytes: 0,
      hubIdle: p.hub?.rss() ?? 0, agentIdle: p.agent?.rss() ?? 0, hubMax: 0, agentMax: 0,
    });
  }
  log(`warming up ${paths.length} paths…`);
  for (const p of paths) await warmUp(p);
  for (let rep = 1; rep <= REPEATS; rep++) {
    for (const p of paths) {
      log(`repeat ${rep}/${REPEATS}: ${p.name}`);
      await measureOnce(p, results.get(p)!);
    }
  }
  const text = report(paths, results, notes, started, (Date.now() - t0) / 1000);
  process.stdout.write('\n' + text);
  if (outFile) {
    fs.writeFileSync(outFile, text);
    fs.writeFileSync(outFile.replace(/(\.md)?$/, '.json'), JSON.stringify(paths.map((p) => ({ name: p.name, ...results.get(p)! })), null, 1));
    log(`written to ${outFile}`);
  }
}

try {
  await main();
} finally {
  closeLoad();
  await group.killAll();
}

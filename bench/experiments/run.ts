/**
 * `npm run bench:experiments [-- --quick] [-- --out FILE] [-- --no-build]`: the data-path design
 * experiments, measured against the floor in one run (docs/benchmarks.md, finding 12).
 *
 * Rows: direct TCP; the plain Node TCP relay hop; the floor — two Node processes joined by one TLS 1.3
 * connection per stream (aes-128-gcm, mutual certificates), `stream.pipe` on both ends
 * (bench/experiments/streamPair.ts --mode node), bare and with Warren's V8 flags (src/shared/nodeFlags.ts);
 * (a) the same pair with the native relay
 * (bench/experiments/native-relay, built here with node-gyp first; the row says so if it fell back or
 * did not build); (b) the floor with its near end (where a hub stands) as 2 processes behind one port
 * (node:cluster, the primary handing each accepted socket to a worker, and the workers accepting
 * themselves), and the plain relay hop as 2 processes the same two ways. Paths are measured in turns (repeat 1 of every path, then repeat 2, …), each cell the
 * median of the repeats; CPU is read from /proc for the near and far processes (all their threads).
 *
 * Bounds (env): EXP_BYTES (per bulk test, default 1 GiB; quick 128 MiB), EXP_SECONDS (cap per test,
 * default 10; quick 4), EXP_REPEATS (default 3), EXP_RTT_COUNT (default 3000; quick 1000),
 * EXP_LONE_COUNT (default 500; quick 200), EXP_CONN_SECONDS (default 2; quick 0.75), EXP_ONLY (regex over
 * row names), EXP_NODE_ARGS (extra node flags for the near and far processes, e.g. --cpu-prof),
 * EXP_PERF=DIR (`perf record -g` of the near and far processes, all threads, during the last repeat's
 * 8-connection bulk test of each row: DIR/ROW.data; read with `perf report -i FILE --no-children --sort dso,sym`).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildGroup, waitForLine, withDeadline } from '../../test/support/proc.js';
import { createCa, issueHubPeerCert, issueServerCert, loadCa } from '../../src/pki/pki.js';
import { NODE_FLAGS } from '../../src/shared/nodeFlags.js';
import { openEndpoint, type Endpoint } from '../lib/endpoints.js';
import type { BulkResult, ConnsResult, LoneResult, RttResult } from '../lib/load.js';
import { startLoadProcess } from '../lib/loadClient.js';
import { machineLine } from '../lib/machine.js';
import { startNodeScript } from '../lib/nodeScript.js';
import { ProcessGroupStat, cpuDelta } from '../lib/procstat.js';
import { fmt, markdownTable, median, mib } from '../lib/stats.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outIndex = argv.indexOf('--out');
const outFile = outIndex >= 0 ? argv[outIndex + 1] : undefined;
const num = (name: string, full: number, q: number): number => {
  const v = process.env[name];
  return v !== undefined && v !== '' ? Number(v) : quick ? q : full;
};
const BYTES = num('EXP_BYTES', 1 << 30, 128 << 20);
const SECONDS = num('EXP_SECONDS', 10, 4);
const REPEATS = num('EXP_REPEATS', 3, 3);
const RTT_COUNT = num('EXP_RTT_COUNT', 3000, 1000);
const LONE_COUNT = num('EXP_LONE_COUNT', 500, 200);
const CONN_SECONDS = num('EXP_CONN_SECONDS', 2, 0.75);
const ONLY = process.env.EXP_ONLY ? new RegExp(process.env.EXP_ONLY, 'i') : undefined;
const NODE_ARGS = (process.env.EXP_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const PERF_DIR = process.env.EXP_PERF;
const ADDON_DIR = path.resolve('bench/experiments/native-relay');
const PAIR = 'bench/experiments/streamPair.ts';

const group = new ChildGroup();
const log = (msg: string): void => void process.stderr.write(`[experiments] ${msg}\n`);

interface Path {
  readonly name: string;
  readonly endpoint: Endpoint;
  readonly floor?: boolean;
  readonly near?: ProcessGroupStat;
  readonly far?: ProcessGroupStat;
}

interface Measured {
  bulk1: number[];
  bulk8: number[];
  rtt50: number[];
  rtt99: number[];
  lone50: number[];
  conns: number[];
  nearCpu: number;
  farCpu: number;
  cpuBytes: number;
  connCpuUs: number[];
  nearIdle: number;
  nearMax: number;
  incomplete: boolean;
}

/** Builds the addon with node-gyp, as `npm ci` would; on failure, where it stopped. */
async function buildAddon(): Promise<{ ok: boolean; seconds: number; detail: string }> {
  const t0 = Date.now();
  const gyp = process.env.npm_config_node_gyp;
  const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
  const child = spawn(cmd, [...args, 'rebuild'], { cwd: ADDON_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => void (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => void (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', (e) => ((out += e.message), resolve(-1)));
    child.on('close', resolve);
  });
  const seconds = (Date.now() - t0) / 1000;
  const tail = out.split('\n').filter((l) => l && !l.startsWith('gyp info')).slice(-6).join(' / ');
  return { ok: code === 0, seconds, detail: code === 0 ? `built in ${fmt(seconds, 1)} s` : `node-gyp exited ${code}: ${tail}` };
}

async function certsFile(dir: string): Promise<string> {
  const ca = await createCa('bench experiments CA');
  const loaded = await loadCa(ca);
  const far = await issueServerCert(loaded, ['127.0.0.1']);
  const near = await issueHubPeerCert(loaded, 'bench-near');
  const file = path.join(dir, 'certs.json');
  fs.writeFileSync(file, JSON.stringify({ caPem: ca.certPem, near, far }), { mode: 0o600 });
  return file;
}

async function pair(env: NodeJS.ProcessEnv, tport: number, mode: 'node' | 'native', workers = 1, v8Flags: readonly string[] = []): Promise<{ port: number; near: ProcessGroupStat; far: ProcessGroupStat; fallback?: string }> {
  const opts = { env, nodeArgs: [...v8Flags, ...NODE_ARGS] };
  const far = await startNodeScript(group, PAIR, ['far', '--mode', mode, '--target', String(tport)], 'listening', opts);
  const near = await startNodeScript(group, PAIR, ['near', '--mode', mode, '--far', String(far.port), '--workers', String(workers)], 'listening', opts);
  let fallback: string | undefined;
  if (mode === 'native') {
    const [farNative, nearNative] = await Promise.all([far, near].map((c) => waitForLine(c.child, /^\{"native":"(.*)"\}$/, { timeoutMs: 5_000, stream: 'stdout' })));
    fallback = [farNative![1], nearNative![1]].find((v) => v !== 'loaded');
  }
  return { port: near.port, near: new ProcessGroupStat([near.child.pid!], workers > 1), far: new ProcessGroupStat([far.child.pid!]), fallback };
}

async function setUp(tmp: string): Promise<{ paths: Path[]; notes: string[] }> {
  const want = (name: string): boolean => !ONLY || ONLY.test(name);
  const notes: string[] = [];
  const paths: Path[] = [];
  const target = await startNodeScript(group, 'bench/lib/target.ts', [], 'listening');
  const tport = target.port;
  const tcp = (port: number): Endpoint => ({ kind: 'tcp', host: '127.0.0.1', port });
  paths.push({ name: 'direct TCP', endpoint: tcp(tport) });
  if (want('plain Node TCP relay hop')) {
    const relay = await startNodeScript(group, 'bench/lib/relayHop.ts', [String(tport)], 'listening');
    paths.push({ name: 'plain Node TCP relay hop', endpoint: tcp(relay.port), near: new ProcessGroupStat([relay.child.pid!]) });
  }
  const env = { ...process.env, STREAM_PAIR_CERTS: await certsFile(tmp) };
  const floorName = 'floor: Node TLS pair, stream.pipe';
  const floor = await pair(env, tport, 'node');
  paths.push({ name: floorName, endpoint: tcp(floor.port), floor: true, near: floor.near, far: floor.far });
  // The floor as Warren's processes run: with the V8 flags of src/shared/nodeFlags.ts (findings 2 and 8),
  // which the bare floor does not have; what the native relay would replace in Warren is this one.
  const flaggedName = "floor with Warren's V8 flags";
  if (want(flaggedName)) {
    const p = await pair(env, tport, 'node', 1, NODE_FLAGS);
    paths.push({ name: flaggedName, endpoint: tcp(p.port), near: p.near, far: p.far });
  }

  const nativeName = '(a) native relay pair (C++, OpenSSL in node)';
  if (want(nativeName)) {
    const built = argv.includes('--no-build') ? { ok: true, detail: 'not rebuilt (--no-build)' } : await buildAddon();
    notes.push(`(a) addon: ${built.detail}.`);
    if (built.ok) {
      const p = await pair(env, tport, 'native');
      if (p.fallback) notes.push(`(a) the addon did not load (${p.fallback}): the row ran the Node fallback.`);
      paths.push({ name: nativeName + (p.fallback ? ' — FELL BACK to Node' : ''), endpoint: tcp(p.port), near: p.near, far: p.far });
    }
  }
  for (const policy of ['rr', 'none'] as const) {
    const how = policy === 'rr' ? 'primary hands sockets over' : 'workers accept';
    const name = `(b) floor, near end sharded: 2 processes, ${how}`;
    if (want(name)) {
      const p = await pair({ ...env, NODE_CLUSTER_SCHED_POLICY: policy }, tport, 'node', 2);
      paths.push({ name, endpoint: tcp(p.port), near: p.near, far: p.far });
    }
    // The same without TLS: what handing a connection to another process costs, not hidden by a handshake.
    const hopName = `(b) plain Node TCP relay hop, 2 processes, ${how}`;
    if (want(hopName)) {
      const hop = await startNodeScript(group, 'bench/lib/relayHop.ts', [String(tport), '2'], 'listening', { env: { ...process.env, NODE_CLUSTER_SCHED_POLICY: policy } });
      paths.push({ name: hopName, endpoint: tcp(hop.port), near: new ProcessGroupStat([hop.child.pid!], true) });
    }
  }
  return { paths: paths.filter((p) => p.floor || want(p.name)), notes };
}

const { load, close: closeLoad } = startLoadProcess();

async function attempt<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    log(`${what} failed: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/** 16 MiB of random bytes through the path to the echo target and back, our end half-closed first. */
async function verifyEcho(ep: Endpoint): Promise<string | undefined> {
  const data = randomBytes(16 << 20);
  const s = await openEndpoint(ep);
  const back: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => back.push(c));
    s.once('end', resolve);
    s.once('close', () => reject(new Error('closed before its end')));
  });
  s.write('E');
  s.end(data);
  await withDeadline(ended, 30_000, 'the echo');
  s.destroy();
  const got = Buffer.concat(back);
  const hash = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  return hash(got) === hash(data) ? undefined : `${got.length} of ${data.length} bytes came back, sha256 ${hash(got).slice(0, 12)} ≠ ${hash(data).slice(0, 12)}`;
}

const cpuOf = (s?: ProcessGroupStat): Map<number, number> => s?.cpu() ?? new Map<number, number>();

/** Starts `perf record` on the row's processes (its first milliseconds attaching are not profiled); the returned function stops it and waits for the file. */
function perfRecord(p: Path): () => Promise<void> {
  const pids = [...(p.near?.pids() ?? []), ...(p.far?.pids() ?? [])];
  if (!PERF_DIR || pids.length === 0) return () => Promise.resolve();
  fs.mkdirSync(PERF_DIR, { recursive: true });
  const file = path.join(PERF_DIR, p.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '') + '.data');
  const perf = group.spawn('perf', ['record', '-F', '499', '-g', '-o', file, '-p', pids.join(',')]);
  return async () => {
    const exited = new Promise((resolve) => perf.once('exit', resolve));
    perf.kill('SIGINT');
    await withDeadline(exited, 30_000, 'perf record');
  };
}

async function measureOnce(p: Path, m: Measured, last: boolean): Promise<void> {
  const timer = setInterval(() => void (m.nearMax = Math.max(m.nearMax, p.near?.rss() ?? 0)), 100);
  try {
    for (const [key, conns] of [['bulk1', 1], ['bulk8', 8]] as const) {
      const n0 = cpuOf(p.near);
      const f0 = cpuOf(p.far);
      const stopPerf = last && conns === 8 ? perfRecord(p) : () => Promise.resolve();
      const r = await attempt(`${p.name} ${key}`, () => load<BulkResult>(p.endpoint, { kind: 'bulk', conns, bytes: BYTES, seconds: SECONDS }));
      await stopPerf();
      if (!r) continue;
      if (!r.complete) m.incomplete = true;
      m.nearCpu += cpuDelta(n0, cpuOf(p.near));
      m.farCpu += cpuDelta(f0, cpuOf(p.far));
      m.cpuBytes += r.bytes;
      m[key].push(r.mbps);
    }
    const rtt = await attempt(`${p.name} rtt`, () => load<RttResult>(p.endpoint, { kind: 'rtt', count: RTT_COUNT, seconds: SECONDS }));
    if (rtt) {
      m.rtt50.push(rtt.p50us);
      m.rtt99.push(rtt.p99us);
    }
    const lone = await attempt(`${p.name} lone`, () => load<LoneResult>(p.endpoint, { kind: 'lone', count: LONE_COUNT, seconds: SECONDS }));
    if (lone) m.lone50.push(lone.p50us);
    const n0 = cpuOf(p.near);
    const f0 = cpuOf(p.far);
    const conns = await attempt(`${p.name} conns`, () => load<ConnsResult>(p.endpoint, { kind: 'conns', parallel: 8, seconds: CONN_SECONDS, max: 1_000_000 }));
    if (conns) {
      m.conns.push(conns.perSecond);
      if (conns.done > 0) m.connCpuUs.push(((cpuDelta(n0, cpuOf(p.near)) + cpuDelta(f0, cpuOf(p.far))) / conns.done) * 1e6);
    }
  } finally {
    clearInterval(timer);
  }
}

function report(paths: readonly Path[], results: Map<Path, Measured>, notes: readonly string[], head: string[]): string {
  const floor = results.get(paths.find((p) => p.floor)!)!;
  const gib = (m: Measured, cpu: number): number => cpu / (m.cpuBytes / 2 ** 30);
  const ratio = (v: number, f: number): string => (Number.isFinite(v / f) ? `${(v / f).toFixed(2)}×` : '–');
  const rows = paths.map((p) => {
    const m = results.get(p)!;
    const b1 = median(m.bulk1);
    const b8 = median(m.bulk8);
    const cpu = p.near || p.far ? gib(m, m.nearCpu + m.farCpu) : NaN;
    return [
      p.name + (m.incomplete ? ' ¹' : ''),
      `${fmt(b1)} (${ratio(b1, median(floor.bulk1))})`,
      `${fmt(b8)} (${ratio(b8, median(floor.bulk8))})`,
      `${fmt(median(m.rtt50))} / ${fmt(median(m.rtt99))}`,
      fmt(median(m.lone50)),
      fmt(median(m.conns)),
      p.near || p.far ? fmt(median(m.connCpuUs)) : '–',
      p.near ? `${fmt(gib(m, m.nearCpu), 2)} / ${p.far ? fmt(gib(m, m.farCpu), 2) : '–'}` : '–',
      Number.isFinite(cpu) ? `${fmt(cpu, 2)} (${ratio(gib(floor, floor.nearCpu + floor.farCpu), cpu)})` : '–',
      p.near ? `${fmt(mib(m.nearIdle))} / ${fmt(mib(m.nearMax))}` : '–',
    ];
  });
  const header = ['path', 'bulk 1 conn MB/s (× floor)', 'bulk 8 conns MB/s (× floor)', '64 B RTT p50 / p99 µs', 'lone new conn p50 µs', 'new conns/s (8 parallel)', 'CPU µs per new conn', 'CPU s/GiB near / far', 'CPU s/GiB total (floor ÷ this)', 'near RSS idle / load MiB'];
  const foot = paths.some((p) => results.get(p)!.incomplete) ? ['¹ a bulk test hit its time cap or lost a connection: MB/s is over what arrived in time.'] : [];
  return [...head, '', markdownTable(header, rows), '', ...foot, ...notes].join('\n') + '\n';
}

async function main(): Promise<void> {
  const started = new Date();
  const t0 = Date.now();
  const load0 = os.loadavg()[0]!;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-exp-'));
  try {
    const { paths, notes } = await setUp(tmp);
    const results = new Map<Path, Measured>();
    for (const p of paths) {
      results.set(p, { bulk1: [], bulk8: [], rtt50: [], rtt99: [], lone50: [], conns: [], nearCpu: 0, farCpu: 0, cpuBytes: 0, connCpuUs: [], nearIdle: p.near?.rss() ?? 0, nearMax: 0, incomplete: false });
    }
    const broken: string[] = [];
    for (const p of paths) {
      const bad = await verifyEcho(p.endpoint).catch((e: unknown) => (e as Error).message);
      if (bad) broken.push(`${p.name}: ${bad}`);
    }
    notes.push(broken.length ? `Integrity check FAILED — ${broken.join('; ')}.` : 'Integrity: on every row 16 MiB of random bytes echoed through the path, client half-closing first, came back with the same sha256 and a clean end.');
    for (const p of paths) await attempt(`${p.name} warm-up`, () => load(p.endpoint, { kind: 'bulk', conns: 2, bytes: Math.min(BYTES, 64 << 20), seconds: 3 }));
    for (let rep = 1; rep <= REPEATS; rep++) {
      for (const p of paths) {
        log(`repeat ${rep}/${REPEATS}: ${p.name}`);
        await measureOnce(p, results.get(p)!, rep === REPEATS);
      }
    }
    const head = [
      `Design experiments, ${started.toISOString()}${quick ? ' (--quick)' : ''}: ${machineLine()}`,
      `Bulk ${fmt(mib(BYTES))} MiB per test (download), cap ${SECONDS} s; RTT over ${RTT_COUNT} pings; ${LONE_COUNT} lone connections; 8 parallel for ${CONN_SECONDS} s; median of ${REPEATS} interleaved repeats; load average ${load0.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end; took ${fmt((Date.now() - t0) / 1000)} s.`,
    ];
    const text = report(paths, results, notes, head);
    process.stdout.write('\n' + text);
    if (outFile) fs.writeFileSync(outFile, text);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main();
} finally {
  closeLoad();
  await group.killAll();
}

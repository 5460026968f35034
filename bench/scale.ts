/**
 * `npm run bench:scale [-- --agents 1000[,5000,10000]] [-- --out FILE]`: N real agents (src/agent, many per
 * process, each with its own key, certificate and TLS connection) against one `warren hub` process.
 *
 * For each N: join N agents through the real join API (one join token with uses N), restart the hub so
 * its memory holds no enrolment garbage, then
 *   1. start every agent at once; time until all N have their tunnel
 *   2. idle for BENCH_SCALE_IDLE_SECONDS (default 30, ≥ 2 keepalive intervals): hub RSS, RSS per agent,
 *      hub CPU while idle (keepalives are the only traffic: each agent's PING every 10 s, the hub's own
 *      probe every six intervals)
 *   3. open STREAMS new streams through the CONNECT door, 8 at a time, to an agent by name (rule 2) and to
 *      an address routed by the agents' advertised routes (rule 3; every agent advertises a /24 of its own
 *      in 10.0.0.0/8, agent 0 also 127.0.0.0/8, where the echo listens): streams/s and hub CPU per stream
 *      with N tunnels held
 *   4. restart the hub (SIGTERM: graceful drain with GOAWAY; then a new process on the same port and data
 *      dir): time until all N are back, counted from the new hub's "hub listening", and reconnects per 100 ms
 * With `--hubs H` (H > 1): H hubs on one PostgreSQL (test/support/postgres.ts), sharing hub 0's CA and keys,
 * behind TCP load balancers (test/support/tcpBalancer.ts, each in a process of its own holding two sockets
 * per agent: as many as the open-file limit needs, each in front of every hub) that spread the agents; RSS per agent over
 * all hubs, and after one hub's restart the time until every hub's agent list shows every agent connected
 * (reachable through that hub, on it or relayed to another).
 * Targets (issue 5): 10,000 agents in < 512 MB hub RSS; after a restart 1,000 agents back within 10 s with
 * no 100 ms window holding more than 20 % of the reconnects.
 *
 * Env: BENCH_SCALE_IDLE_SECONDS (default 30), BENCH_SCALE_PER_PROCESS (agents per host process, default
 * 2500), BENCH_SCALE_TIMEOUT_SECONDS (wait for all agents at most this long, default 300).
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { ChildGroup, waitForExit, waitForLine } from '../test/support/proc.js';
import { WARREN_BIN, tempDir } from '../test/support/warren.js';
import { startPostgres } from '../test/support/postgres.js';
import { connectThroughHub, readAll, type HubAddress } from '../test/support/connectClient.js';
import { sha256Hex } from '../test/support/upstreams.js';
import { NODE_FLAGS } from '../src/shared/nodeFlags.js';
import { cpuSeconds, rssBytes } from './lib/procstat.js';
import { fmt, markdownTable, mib } from './lib/stats.js';
import { machineLine } from './lib/machine.js';

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const HUBS = Number(arg('--hubs') ?? 1);
const COUNTS = (arg('--agents') ?? '1000').split(',').map((s) => Number(s.replace(/_/g, '')));
const OUT = arg('--out');
const IDLE_SECONDS = Number(process.env.BENCH_SCALE_IDLE_SECONDS ?? 30);
const PER_PROCESS = Number(process.env.BENCH_SCALE_PER_PROCESS ?? 2500);
const TIMEOUT_MS = Number(process.env.BENCH_SCALE_TIMEOUT_SECONDS ?? 300) * 1000;
/** Extra node flags for the agent host processes (BENCH_HOST_NODE_ARGS="--cpu-prof …"), to profile them. */
const hostNodeArgs = (process.env.BENCH_HOST_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const log = (msg: string) => process.stderr.write(`[scale] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (!Number.isInteger(HUBS) || HUBS < 1) throw new Error(`--hubs: "${arg('--hubs')}" is not a count of hubs like 3`);
for (const n of COUNTS) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--agents: "${arg('--agents')}" is not a list of counts like 1000,5000,10000`);
}

// ------------------------------------------------------------------------------------------------
// File descriptors: the hub needs one per agent. Node raises its soft limit to the hard limit at start,
// but cannot raise the hard limit (there is no process.setrlimit), so when the hard limit is too low the
// hub and the agent hosts are started through prlimit(1), which root may use to raise it.

function hardNofile(): number {
  const m = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

function withNofile(need: number, cmd: string, args: string[]): [string, string[]] {
  if (hardNofile() >= need) return [cmd, args];
  if (spawnSync('prlimit', ['--version']).status !== 0) {
    throw new Error(`${need} open files are needed but the hard limit is ${hardNofile()} and prlimit(1) is missing: raise it (ulimit -Hn) first`);
  }
  return ['prlimit', [`--nofile=${need}:${need}`, '--', cmd, ...args]];
}

// ------------------------------------------------------------------------------------------------
// Processes

const group = new ChildGroup();

interface HubProc {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** Epoch ms of the "hub listening" log line (pino's own timestamp). */
  readonly listeningAt: number;
  /** The pid doing the work (prlimit execs node in place, so it is the child's pid either way). */
  readonly pid: number;
}

/** Extra hub flags and environment: the shared store of a multi-hub run. */
interface HubExtra {
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

async function startHub(dataDir: string, port: number, n: number, extra: HubExtra = {}): Promise<HubProc> {
  // As bin/warren.js starts it (src/shared/nodeFlags.ts), plus BENCH_NODE_ARGS (e.g. --cpu-prof, as in bench/run.ts).
  const nodeArgs = [...NODE_FLAGS, ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];
  const [cmd, args] = withNofile(n + 4096, process.execPath, [...nodeArgs, WARREN_BIN, 'hub', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, ...(extra.args ?? [])]);
  const child = group.spawn(cmd, args, { env: { ...process.env, WARREN_LOG_LEVEL: 'info', ...extra.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // A hub that exits by itself ends the run, with what it said: the numbers after it would be meaningless.
  child.once('close', () => {
    if (stopping.has(child)) return;
    void waitForExit(child, 1000).then((r) => {
      const said = `${r.stderr}${r.stdout.split('\n').filter((l) => !/"level":[23]0,/.test(l)).join('\n')}`.trim().slice(-4000);
      log(`the hub exited unexpectedly (code ${r.code}, signal ${r.signal}):\n${said}`);
      process.exit(1);
    });
  });
  const m = await waitForLine(child, /"time":(\d+).*"listen":"[^"]*:(\d+)".*"url":"([^"]+)".*"msg":"hub listening"/, { timeoutMs: 60_000 });
  return { child, pid: child.pid!, listeningAt: Number(m[1]), port: Number(m[2]), url: m[3]! };
}

/** Hubs stopped on purpose (stopHub). */
const stopping = new WeakSet<ChildProcess>();

async function stopHub(hub: HubProc): Promise<void> {
  stopping.add(hub.child);
  if (hub.child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => hub.child.once('exit', () => resolve()));
  hub.child.kill('SIGTERM');
  const timer = setTimeout(() => hub.child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(timer);
}

async function cliJson<T>(hub: HubProc, dataDir: string, args: string[]): Promise<T> {
  const token = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  const r = spawnSync(process.execPath, [WARREN_BIN, ...args, '-o', 'json', '--ca-file', path.join(dataDir, 'ca.crt')], {
    env: { ...process.env, WARREN_HUB: hub.url, WARREN_TOKEN: token, WARREN_CONFIG: path.join(dataDir, 'no-login.json') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`warren ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The agent host processes (bench/lib/agentHost.ts) and what their agents report. */
class Fleet {
  readonly hosts: Array<{ child: ChildProcess; offset: number; names: string[] }> = [];
  /** Per agent: is it connected, and the epoch ms of every connect. */
  readonly connected: boolean[];
  readonly connects: number[][];
  connectedCount = 0;
  /** Agents that connected again since `mark()`, and where each one's connects stood then. */
  reconnected = 0;
  private marks: number[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(readonly n: number, readonly root: string) {
    this.connected = new Array<boolean>(n).fill(false);
    this.connects = Array.from({ length: n }, () => []);
    const names = Array.from({ length: n }, (_, i) => `a${String(i).padStart(5, '0')}`);
    for (let offset = 0; offset < n; offset += PER_PROCESS) {
      const mine = names.slice(offset, offset + PER_PROCESS);
      const [cmd, args] = withNofile(mine.length + 4096, process.execPath, [...hostNodeArgs, '--import', 'tsx', path.resolve('bench/lib/agentHost.ts')]);
      // fork() runs node itself; prlimit wraps it through spawn with an IPC channel instead.
      const child =
        cmd === process.execPath
          ? fork(path.resolve('bench/lib/agentHost.ts'), [], { execArgv: [...hostNodeArgs, '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
          : group.spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: { kind: string; events?: Array<[number, 'c' | 'd', number]> }) => {
        if (m.kind !== 'events') return;
        for (const [i, what, at] of m.events!) this.onEvent(offset + i, what, at);
      });
      this.hosts.push({ child, offset, names: mine });
    }
  }

  private onEvent(i: number, what: 'c' | 'd', at: number): void {
    if (what === 'c') {
      this.connects[i]!.push(at);
      if (this.connects[i]!.length === (this.marks[i] ?? -1) + 1) this.reconnected++;
      if (!this.connected[i]) {
        this.connected[i] = true;
        this.connectedCount++;
      }
    } else if (this.connected[i]) {
      this.connected[i] = false;
      this.connectedCount--;
    }
    for (const w of this.waiters) w();
  }

  /** Starts counting `reconnected` from now; returns each agent's connect count at this point. */
  mark(): number[] {
    this.marks = this.connects.map((c) => c.length);
    this.reconnected = 0;
    return this.marks;
  }

  /** Sends one command to every host and waits for each host's answer of `kind`. */
  async each<T>(kind: string, msg: (h: Fleet['hosts'][number]) => object): Promise<T[]> {
    return Promise.all(
      this.hosts.map(
        (h) =>
          new Promise<T>((resolve) => {
            const on = (m: { kind: string }) => {
              if (m.kind !== kind) return;
              h.child.off('message', on);
              resolve(m as T);
            };
            h.child.on('message', on);
            h.child.send(msg(h));
          }),
      ),
    );
  }

  /** Resolves when `pred` holds (checked on every event), or after `ms` with false. */
  until(pred: () => boolean, ms: number): Promise<boolean> {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.waiters.delete(check), resolve(false)), ms);
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(true);
      };
      this.waiters.add(check);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.hosts.map(
        (h) =>
          new Promise<void>((resolve) => {
            if (h.child.exitCode !== null) return resolve();
            const timer = setTimeout(() => h.child.kill('SIGKILL'), 30_000);
            h.child.once('exit', () => (clearTimeout(timer), resolve()));
            h.child.send({ cmd: 'stop' });
          }),
      ),
    );
  }
}

// ------------------------------------------------------------------------------------------------
// One run

interface ScaleResult {
  n: number;
  joinSeconds: number;
  joinFailed: number;
  hubRssBase: number;
  connectSeconds: number | undefined;
  connectedAtEnd: number;
  hubRssIdle: number;
  hubCpuIdlePct: number;
  hostsRss: number;
  restartDownSeconds: number;
  backSeconds: number | undefined;
  backCount: number;
  maxWindowShare: number;
  histogram: number[];
  hubRssAfterRestart: number;
  /** CPU seconds while the agents (re)connected: hub, and all agent hosts together. */
  hubCpuConnect: number;
  hostsCpuConnect: number;
  hubCpuReconnect: number;
  hostsCpuReconnect: number;
  /** STREAMS new streams with N tunnels held, to an agent by name and to an address by route. */
  byName: StreamRate;
  byRoute: StreamRate;
}

interface StreamRate {
  perSecond: number;
  /** Hub CPU µs per stream. */
  hubCpuUs: number;
}

/** The routes agent `i` advertises: a /24 of its own, and for agent 0 the loopback range too. */
function routesOf(i: number): string[] {
  return [`10.${(i >> 8) & 255}.${i & 255}.0/24`, ...(i === 0 ? ['127.0.0.0/8'] : [])];
}

/** STREAMS streams through the hub's CONNECT door to an echo named by `host`: streams/s and hub CPU per stream. */
async function streamRate(hub: HubProc, dataDir: string, host: string): Promise<StreamRate> {
  const client = { url: hub.url, caPath: path.join(dataDir, 'ca.crt'), adminToken: fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim() };
  const c0 = cpuSeconds(hub.pid);
  const t0 = performance.now();
  await echoStreams(client, () => host);
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: STREAMS / seconds, hubCpuUs: ((cpuSeconds(hub.pid) - c0) * 1e6) / STREAMS };
}

/**
 * Opens STREAMS CONNECT streams through `client`'s hub (or balancer), 8 at a time, stream i to an echo on
 * 127.0.0.1 by the host `host(i)`; each stream's echo is checked.
 */
async function echoStreams(client: HubAddress, host: (i: number) => string): Promise<void> {
  const echo = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const port = (echo.address() as net.AddressInfo).port;
  const one = async (i: number) => {
    const socket = await connectThroughHub(client, `${host(i)}:${port}`);
    const back = readAll(socket);
    socket.resume();
    socket.end(`stream ${i}`);
    if ((await back).sha256 !== sha256Hex(`stream ${i}`)) throw new Error(`stream ${i} to ${host(i)}: the echo differs`);
  };
  try {
    for (let i = 0; i < STREAMS; i += 8) await Promise.all(Array.from({ length: Math.min(8, STREAMS - i) }, (_, k) => one(i + k)));
  } finally {
    echo.close();
  }
}

function hostsCpu(fleet: Fleet): number {
  return fleet.hosts.reduce((s, h) => s + cpuSeconds(h.child.pid!), 0);
}

/** RSS sampled every 200 ms over `seconds`, and the CPU used meanwhile. */
async function idleWindow(pid: number, seconds: number): Promise<{ rss: number; cpuPct: number }> {
  const c0 = cpuSeconds(pid);
  const t0 = Date.now();
  let rss = 0;
  while (Date.now() - t0 < seconds * 1000) {
    rss = Math.max(rss, rssBytes(pid));
    await sleep(200);
  }
  return { rss, cpuPct: (100 * (cpuSeconds(pid) - c0)) / ((Date.now() - t0) / 1000) };
}

async function runScale(n: number): Promise<ScaleResult> {
  const dataDir = tempDir(`scale-hub-${n}`);
  const root = tempDir(`scale-agents-${n}`);
  log(`N=${n}: starting the hub`);
  let hub = await startHub(dataDir, 0, n);
  const port = hub.port;
  const fleet = new Fleet(n, root);
  try {
    const token = (await cliJson<{ token: string }>(hub, dataDir, ['join-token', 'create', '--uses', String(n), '--ttl', '6h', '--routes', '10.0.0.0/8,127.0.0.0/8'])).token;
    log(`N=${n}: joining ${n} agents through the join API (${fleet.hosts.length} host processes)`);
    const j0 = Date.now();
    const joined = await fleet.each<{ count: number; failed: number; firstError?: string }>('enrolled', (h) => ({ cmd: 'enroll', token, hub: hub.url, names: h.names, root, concurrency: 8 }));
    const joinSeconds = (Date.now() - j0) / 1000;
    const joinFailed = joined.reduce((s, j) => s + j.failed, 0);
    if (joinFailed) log(`N=${n}: ${joinFailed} joins failed, e.g. ${joined.find((j) => j.firstError)?.firstError}`);
    log(`N=${n}: joined in ${joinSeconds.toFixed(1)} s; restarting the hub for a clean baseline`);
    await stopHub(hub);
    hub = await startHub(dataDir, port, n);
    await sleep(3000);
    const hubRssBase = rssBytes(hub.pid);

    log(`N=${n}: starting ${n} agents at once`);
    const s0 = Date.now();
    const hubC0 = cpuSeconds(hub.pid);
    const hostC0 = hostsCpu(fleet);
    await fleet.each('started', (h) => ({ cmd: 'start', hub: hub.url, names: h.names, root, routes: h.names.map((_, k) => routesOf(h.offset + k)) }));
    const all = await fleet.until(() => fleet.connectedCount === n, TIMEOUT_MS);
    const connectSeconds = all ? (Math.max(...fleet.connects.map((c) => c[0] ?? 0)) - s0) / 1000 : undefined;
    const hubCpuConnect = cpuSeconds(hub.pid) - hubC0;
    const hostsCpuConnect = hostsCpu(fleet) - hostC0;
    log(`N=${n}: ${fleet.connectedCount}/${n} connected${all ? ` after ${connectSeconds!.toFixed(1)} s` : ' (timed out)'}; idling ${IDLE_SECONDS} s`);
    await sleep(5000);
    const idle = await idleWindow(hub.pid, IDLE_SECONDS);
    if (process.env.BENCH_SCALE_SNAPSHOT) {
      // With BENCH_NODE_ARGS=--heapsnapshot-signal=SIGUSR2: a heap snapshot of the hub holding N tunnels.
      process.kill(hub.pid, 'SIGUSR2');
      await sleep(Number(process.env.BENCH_SCALE_SNAPSHOT) * 1000);
    }
    const hostsRss = fleet.hosts.reduce((s, h) => s + rssBytes(h.child.pid!), 0);
    const connectedAtEnd = fleet.connectedCount;
    log(`N=${n}: ${STREAMS} streams by agent name, then ${STREAMS} by route`);
    const byName = await streamRate(hub, dataDir, 'a00000');
    const byRoute = await streamRate(hub, dataDir, '127.0.0.1');

    log(`N=${n}: restarting the hub`);
    const before = fleet.mark();
    const r0 = Date.now();
    await stopHub(hub);
    const hostR0 = hostsCpu(fleet);
    hub = await startHub(dataDir, port, n);
    const hubR0 = cpuSeconds(hub.pid);
    const restartDownSeconds = (hub.listeningAt - r0) / 1000;
    const back = await fleet.until(() => fleet.reconnected === n, TIMEOUT_MS);
    const hubCpuReconnect = cpuSeconds(hub.pid) - hubR0;
    const hostsCpuReconnect = hostsCpu(fleet) - hostR0;
    const firstBack = fleet.connects.map((c, i) => c[before[i]!]).filter((t): t is number => t !== undefined);
    const backSeconds = back ? (Math.max(...firstBack) - hub.listeningAt) / 1000 : undefined;
    const buckets: (number | undefined)[] = [];
    for (const t of firstBack) {
      const b = Math.max(0, Math.floor((t - hub.listeningAt) / 100));
      buckets[b] = (buckets[b] ?? 0) + 1;
    }
    const histogram = Array.from(buckets, (v) => v ?? 0);
    const maxWindowShare = firstBack.length ? Math.max(...histogram) / n : 0;
    log(`N=${n}: ${firstBack.length}/${n} back${back ? ` ${backSeconds!.toFixed(1)} s after the new hub listened` : ' (timed out)'}`);
    await sleep(3000);
    const hubRssAfterRestart = rssBytes(hub.pid);
    return {
      n, joinSeconds, joinFailed, hubRssBase, connectSeconds, connectedAtEnd, hubRssIdle: idle.rss, hubCpuIdlePct: idle.cpuPct, hostsRss,
      restartDownSeconds, backSeconds, backCount: firstBack.length, maxWindowShare, histogram, hubRssAfterRestart,
      hubCpuConnect, hostsCpuConnect, hubCpuReconnect, hostsCpuReconnect, byName, byRoute,
    };
  } finally {
    await fleet.stop();
    await stopHub(hub);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------
// Several hubs on one PostgreSQL (--hubs H)

interface HaResult {
  n: number;
  hubs: number;
  connectSeconds: number | undefined;
  /** Per hub: RSS before the agents, and its highest RSS in the idle window; agents it held then. */
  hubRssBase: number[];
  hubRssIdle: number[];
  agentsPerHub: number[];
  /** From the SIGTERM of one hub: every agent connected again (the agents' view), and reachable through every hub (each hub's API). */
  agentsBackSeconds: number | undefined;
  reachableSeconds: number | undefined;
  /** The same, counted from the restarted hub's "hub listening". */
  reachableAfterListenSeconds: number | undefined;
  restartDownSeconds: number;
  hubCpuIdlePct: number[];
  /** Store calls made by all hubs while STREAMS CONNECT streams opened and closed through the balancer, per stream. */
  queriesPerStream: { reads: number; writes: number; byOp: Record<string, number> };
}

interface AgentRow { name: string; connected: boolean; hub: string | null }

/** GET `urlPath` from a hub as `token`: the body's text (a non-200 answer rejects). */
function hubGet(hub: HubProc, caPem: string, token: string, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${hub.url}${urlPath}`, { ca: caPem, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`GET ${urlPath}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function apiGet<T>(hub: HubProc, caPem: string, token: string, urlPath: string): Promise<T> {
  return JSON.parse(await hubGet(hub, caPem, token, urlPath)) as T;
}

/** Agents that `hub` sees connected somewhere (on itself or on another hub), by hub id. */
async function agentsSeen(hub: HubProc, caPem: string, token: string): Promise<Map<string, number>> {
  const rows = await apiGet<AgentRow[]>(hub, caPem, token, '/api/v1/agents');
  const at = new Map<string, number>();
  for (const r of rows) if (r.connected && r.hub !== null) at.set(r.hub, (at.get(r.hub) ?? 0) + 1);
  return at;
}

/** `warren_store_queries_total` by method, from a hub's /metrics. */
async function storeQueries(hub: HubProc, caPem: string, token: string): Promise<Map<string, number>> {
  const text = await hubGet(hub, caPem, token, '/metrics');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^warren_store_queries_total\{op="(\w+)"\} (\d+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

const STREAMS = 200;
/** Store methods that only read (what the hot path must not need). */
const READS = /^(get|list|query|ping)/;

/**
 * Opens STREAMS CONNECT streams through the balancer, 8 at a time, each to a random agent's own echo
 * (so most are relayed between hubs), and counts the store calls all hubs made meanwhile.
 */
async function storeQueriesPerStream(hubs: readonly HubProc[], url: string, caPem: string, admin: string, fleet: Fleet): Promise<HaResult['queriesPerStream']> {
  const caPath = path.join(tempDir('scale-ha-ca'), 'ca.crt');
  fs.writeFileSync(caPath, caPem);
  const names = fleet.hosts.flatMap((h) => h.names);
  const total = (all: Array<Map<string, number>>) => {
    const t = new Map<string, number>();
    for (const m of all) for (const [op, v] of m) t.set(op, (t.get(op) ?? 0) + v);
    return t;
  };
  try {
    const before = total(await Promise.all(hubs.map((h) => storeQueries(h, caPem, admin))));
    await echoStreams({ url, caPath, adminToken: admin }, (i) => names[(i * 7919) % names.length]!);
    // Audit rows are written up to 25 ms after a stream ends: wait for them to be counted.
    await sleep(500);
    const after = total(await Promise.all(hubs.map((h) => storeQueries(h, caPem, admin))));
    const byOp: Record<string, number> = {};
    for (const [op, v] of after) if (v !== (before.get(op) ?? 0)) byOp[op] = (v - (before.get(op) ?? 0)) / STREAMS;
    const of = (read: boolean) => Object.entries(byOp).filter(([op]) => READS.test(op) === read).reduce((a, [, v]) => a + v, 0);
    return { reads: of(true), writes: of(false), byOp };
  } finally {
    fs.rmSync(path.dirname(caPath), { recursive: true, force: true });
  }
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** Polls every hub's agent list (every 250 ms) until each sees all `n` agents connected; false after `ms`. */
async function allReachable(hubs: readonly HubProc[], caPem: string, token: string, n: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const seen = await Promise.all(hubs.map((h) => agentsSeen(h, caPem, token).catch(() => new Map<string, number>())));
    if (seen.every((m) => sum(m) === n)) return true;
    await sleep(250);
  }
  return false;
}

/** The load balancers of `--hubs`: one URL per balancer process. */
interface Balancers {
  readonly urls: readonly string[];
  close(): void;
}

/**
 * Load balancers in processes of their own (bench/lib/balancerHost.ts), each in front of every hub: a
 * balancer holds two sockets per agent, so as many as fit under the hard open-file limit, agent host
 * processes shared between them in turn. Resolves with their URLs.
 */
async function startBalancers(ports: readonly number[], fleet: Fleet): Promise<Balancers> {
  const hosts = fleet.hosts.length;
  let count = 1;
  while (count < hosts && 2 * Math.ceil(hosts / count) * PER_PROCESS + 1024 > hardNofile()) count++;
  const children = Array.from({ length: count }, () =>
    fork(path.resolve('bench/lib/balancerHost.ts'), ports.map(String), { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const urls = await Promise.all(
    children.map((c) => new Promise<string>((resolve, reject) => {
      c.once('message', (m: { port: number }) => resolve(`https://127.0.0.1:${m.port}`));
      c.once('exit', (code) => reject(new Error(`a load balancer process exited (${code}) before listening`)));
    })),
  );
  return { urls, close: () => children.forEach((c) => c.disconnect()) };
}

async function runHa(n: number, hubCount: number): Promise<HaResult> {
  const pg = await startPostgres({ group });
  const role = pg.roles[0]!;
  // The password from the environment, as in a deployment (a Secret), not on the command line.
  const store: HubExtra = { args: ['--store', `postgres://${role.name}@${pg.host}:${pg.port}/${role.name}`], env: { PGPASSWORD: role.password } };
  const dirs = Array.from({ length: hubCount }, (_, i) => tempDir(`scale-ha-hub${i}-${n}`));
  const root = tempDir(`scale-ha-agents-${n}`);
  log(`N=${n}, ${hubCount} hubs: starting hub 0 on PostgreSQL`);
  let first = await startHub(dirs[0]!, 0, n, store);
  const caPem = fs.readFileSync(path.join(dirs[0]!, 'ca.crt'), 'utf8');
  const admin = fs.readFileSync(path.join(dirs[0]!, 'admin.token'), 'utf8').trim();
  const fleet = new Fleet(n, root);
  const hubs: HubProc[] = [];
  let lb: Balancers | undefined;
  try {
    const token = (await cliJson<{ token: string }>(first, dirs[0]!, ['join-token', 'create', '--uses', String(n), '--ttl', '6h'])).token;
    log(`N=${n}: joining ${n} agents through hub 0`);
    const joined = await fleet.each<{ failed: number }>('enrolled', (h) => ({ cmd: 'enroll', token, hub: first.url, names: h.names, root, concurrency: 8 }));
    const joinFailed = joined.reduce((s, j) => s + j.failed, 0);
    if (joinFailed) log(`N=${n}: ${joinFailed} joins failed`);
    await stopHub(first);
    // The other hubs share hub 0's CA and keys (in a deployment: one Secret), not its lock.
    for (let i = 1; i < hubCount; i++) fs.cpSync(dirs[0]!, dirs[i]!, { recursive: true, filter: (src) => path.basename(src) !== 'hub.lock' });
    for (let i = 0; i < hubCount; i++) hubs.push(await startHub(dirs[i]!, 0, n, store));
    first = hubs[0]!;
    lb = await startBalancers(hubs.map((h) => h.port), fleet);
    log(`N=${n}: ${lb.urls.length} load balancer process(es) in front of the ${hubCount} hubs`);
    await sleep(3000);
    const hubRssBase = hubs.map((h) => rssBytes(h.pid));

    log(`N=${n}: starting ${n} agents at once through the load balancer`);
    const s0 = Date.now();
    await fleet.each('started', (h) => ({ cmd: 'start', hub: lb!.urls[(h.offset / PER_PROCESS) % lb!.urls.length], names: h.names, root }));
    const all = await fleet.until(() => fleet.connectedCount === n, TIMEOUT_MS);
    const connectSeconds = all ? (Math.max(...fleet.connects.map((c) => c[0] ?? 0)) - s0) / 1000 : undefined;
    log(`N=${n}: ${fleet.connectedCount}/${n} connected${all ? ` after ${connectSeconds!.toFixed(1)} s` : ' (timed out)'}; idling ${IDLE_SECONDS} s`);
    await allReachable(hubs, caPem, admin, n, 60_000);
    await sleep(5000);
    const idle = await Promise.all(hubs.map((h) => idleWindow(h.pid, IDLE_SECONDS)));
    const ids = await agentsSeen(first, caPem, admin);
    const selfIds = await Promise.all(hubs.map(async (h) => (await apiGet<Array<{ id: string; self: boolean }>>(h, caPem, admin, '/api/v1/hubs')).find((r) => r.self)!.id));
    const agentsPerHub = selfIds.map((id) => ids.get(id) ?? 0);

    const queriesPerStream = await storeQueriesPerStream(hubs, lb.urls[0]!, caPem, admin, fleet);
    log(`N=${n}: store calls per new stream over all hubs: ${queriesPerStream.reads} reads, ${queriesPerStream.writes} writes (${JSON.stringify(queriesPerStream.byOp)})`);

    const victim = 1 % hubCount;
    log(`N=${n}: restarting hub ${victim} (${agentsPerHub[victim]} agents on it)`);
    const r0 = Date.now();
    const stopped = stopHub(hubs[victim]!);
    const agentsBack = fleet.until(() => fleet.connectedCount < n, 30_000).then(async (dropped) => {
      if (!dropped) return undefined;
      return (await fleet.until(() => fleet.connectedCount === n, TIMEOUT_MS)) ? (Date.now() - r0) / 1000 : undefined;
    });
    await stopped;
    hubs[victim] = await startHub(dirs[victim]!, hubs[victim]!.port, n, store);
    const restartDownSeconds = (hubs[victim].listeningAt - r0) / 1000;
    const reachable = await allReachable(hubs, caPem, admin, n, TIMEOUT_MS);
    const reachedAt = Date.now();
    const agentsBackSeconds = await agentsBack;
    log(`N=${n}: every agent reachable through every hub ${reachable ? `${((reachedAt - r0) / 1000).toFixed(1)} s after the SIGTERM` : '(timed out)'}`);
    return {
      n, hubs: hubCount, connectSeconds, hubRssBase, hubRssIdle: idle.map((w) => w.rss), agentsPerHub, hubCpuIdlePct: idle.map((w) => w.cpuPct),
      agentsBackSeconds, restartDownSeconds, queriesPerStream,
      reachableSeconds: reachable ? (reachedAt - r0) / 1000 : undefined,
      reachableAfterListenSeconds: reachable ? (reachedAt - hubs[victim].listeningAt) / 1000 : undefined,
    };
  } finally {
    await fleet.stop();
    lb?.close();
    await Promise.all(hubs.map((h) => stopHub(h)));
    await pg.stop();
    fs.rmSync(root, { recursive: true, force: true });
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

function reportHa(results: HaResult[], started: Date): string {
  const rows = results.map((r) => {
    const base = r.hubRssBase.reduce((a, b) => a + b, 0);
    const idle = r.hubRssIdle.reduce((a, b) => a + b, 0);
    const opt = (v: number | undefined) => (v === undefined ? 'timed out' : fmt(v, 1));
    return [
      fmt(r.n), String(r.hubs), opt(r.connectSeconds), r.agentsPerHub.map((a) => fmt(a)).join(' / '),
      r.hubRssBase.map((b) => fmt(mib(b))).join(' / '), r.hubRssIdle.map((b) => fmt(mib(b))).join(' / '),
      fmt((idle - base) / r.n / 1024, 1), r.hubCpuIdlePct.map((c) => fmt(c, 1)).join(' / '),
      fmt(r.restartDownSeconds, 1), opt(r.agentsBackSeconds), opt(r.reachableSeconds), opt(r.reachableAfterListenSeconds),
      `${fmt(r.queriesPerStream.reads, 2)} / ${fmt(r.queriesPerStream.writes, 2)}`,
    ];
  });
  const header = ['agents', 'hubs', 'connect all s', 'agents per hub', 'hub RSS 0 agents MiB', 'hub RSS idle MiB', 'KiB / agent (all hubs)', 'hub idle CPU %', 'restart: hub down s', 'restart: agents all connected s', 'restart: all reachable through every hub s', '… counted from the new hub listening s', 'store reads / writes per new stream (all hubs)'];
  return [
    `Warren scale benchmark, several hubs, ${started.toISOString()}: ${machineLine()}`,
    'Hubs on one PostgreSQL (each hub its own process), agents spread by TCP load balancers (round robin, a refused backend skipped; each its own process, the agent host processes shared between them);',
    `agents ${PER_PROCESS} per host process; idle window ${IDLE_SECONDS} s; one hub restarted with SIGTERM (times counted from the SIGTERM);`,
    `store calls counted over ${STREAMS} CONNECT streams through the balancer to random agents (warren_store_queries_total of every hub).`,
    '',
    markdownTable(header, rows),
  ].join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// Report

/** One character per 100 ms: the reconnects in that window, scaled to the busiest one. */
function sparkline(h: number[]): string {
  const bars = ' ▁▂▃▄▅▆▇█';
  const max = Math.max(1, ...h);
  return h.map((v) => (v === 0 ? '·' : bars[Math.max(1, Math.round((v / max) * 8))])).join('');
}

function report(results: ScaleResult[], started: Date): string {
  const rows = results.map((r) => [
    fmt(r.n),
    `${fmt(r.joinSeconds, 1)}${r.joinFailed ? ` (${r.joinFailed} failed)` : ''}`,
    r.connectSeconds === undefined ? `timed out (${fmt(r.connectedAtEnd)})` : fmt(r.connectSeconds, 1),
    fmt(mib(r.hubRssBase)),
    fmt(mib(r.hubRssIdle)),
    fmt((r.hubRssIdle - r.hubRssBase) / r.n / 1024, 1),
    fmt(r.hubCpuIdlePct, 1),
    fmt(r.restartDownSeconds, 1),
    r.backSeconds === undefined ? `timed out (${fmt(r.backCount)})` : fmt(r.backSeconds, 1),
    `${fmt(100 * r.maxWindowShare, 1)} %`,
    fmt(mib(r.hubRssAfterRestart)),
    fmt(mib(r.hostsRss)),
    `${fmt((1000 * r.hubCpuConnect) / r.n, 1)} / ${fmt((1000 * r.hostsCpuConnect) / r.n, 1)}`,
    `${fmt((1000 * r.hubCpuReconnect) / r.n, 1)} / ${fmt((1000 * r.hostsCpuReconnect) / r.n, 1)}`,
    `${fmt(r.byName.perSecond)} / ${fmt(r.byRoute.perSecond)}`,
    `${fmt(r.byName.hubCpuUs)} / ${fmt(r.byRoute.hubCpuUs)}`,
  ]);
  const header = [
    'agents', 'join all s', 'connect all s', 'hub RSS 0 agents MiB', 'hub RSS idle MiB', 'KiB / agent', 'hub idle CPU %', 'restart: hub down s', 'restart: all back s', 'busiest 100 ms',
    'hub RSS after restart MiB', 'agent hosts RSS MiB', 'CPU ms per agent, connect: hub / agents', 'CPU ms per agent, reconnect: hub / agents',
    'new streams/s (8 at a time): by name / by route', 'hub CPU µs per stream: by name / by route',
  ];
  const out = [
    `Warren scale benchmark, ${started.toISOString()}: ${machineLine()}`,
    `One hub process; agents ${PER_PROCESS} per host process; idle window ${IDLE_SECONDS} s; keepalive 10 s (agents ping, the hub probes every 60 s).`,
    '',
    markdownTable(header, rows),
    '',
    'Reconnects per 100 ms after the restarted hub listened (one character per 100 ms, height relative to the busiest window):',
    '',
    ...results.map((r) => {
      // Long recoveries are drawn one character per second (the busiest-window figure stays per 100 ms).
      const perSecond = r.histogram.length > 150;
      const h = perSecond ? Array.from({ length: Math.ceil(r.histogram.length / 10) }, (_, i) => r.histogram.slice(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0)) : r.histogram;
      return `    ${String(r.n).padStart(6)}  ${sparkline(h)}  (busiest 100 ms: ${fmt(Math.max(0, ...r.histogram))} of ${fmt(r.n)}${perSecond ? '; drawn per second' : ''})`;
    }),
    '',
    'Targets (issue 5):',
    '',
  ];
  const t: string[][] = [];
  const r10k = results.find((r) => r.n >= 10_000);
  if (r10k) t.push(['10,000 agents in < 512 MB hub RSS', `${fmt(mib(Math.max(r10k.hubRssIdle, r10k.hubRssAfterRestart)))} MiB`, Math.max(r10k.hubRssIdle, r10k.hubRssAfterRestart) < 512e6 ? 'met' : '**missed**']);
  const r1k = results.find((r) => r.n === 1000);
  if (r1k) {
    t.push(['after a restart, 1,000 agents back within 10 s', r1k.backSeconds === undefined ? 'not all back' : `${fmt(r1k.backSeconds, 1)} s`, r1k.backSeconds !== undefined && r1k.backSeconds <= 10 ? 'met' : '**missed**']);
    t.push(['no 100 ms window with > 20 % of the reconnects', `${fmt(100 * r1k.maxWindowShare, 1)} %`, r1k.maxWindowShare <= 0.2 ? 'met' : '**missed**']);
  }
  out.push(t.length ? markdownTable(['target', 'this run', ''], t) : '(run with --agents 1000,10000 to check them)');
  return out.join('\n') + '\n';
}

async function main(): Promise<void> {
  const started = new Date();
  let text: string;
  let results: unknown[];
  if (HUBS > 1) {
    const ha: HaResult[] = [];
    for (const n of COUNTS) {
      ha.push(await runHa(n, HUBS));
      log(`N=${n} done: ${JSON.stringify(ha.at(-1))}`);
    }
    [text, results] = [reportHa(ha, started), ha];
  } else {
    const one: ScaleResult[] = [];
    for (const n of COUNTS) {
      one.push(await runScale(n));
      // Each count's row as soon as it is known: a later, larger count may not finish.
      log(`N=${n} done: ${JSON.stringify(one.at(-1))}`);
    }
    [text, results] = [report(one, started), one];
  }
  process.stdout.write('\n' + text);
  if (OUT) {
    fs.writeFileSync(OUT, text);
    fs.writeFileSync(OUT.replace(/(\.md)?$/, '.json'), JSON.stringify(results, null, 1));
  }
}

try {
  await main();
} finally {
  await group.killAll();
}

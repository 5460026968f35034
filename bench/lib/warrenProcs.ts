/**
 * Warren processes for the benchmark: a hub (`warren hub` from bin/warren.js, or the forward stand-in),
 * a user with a grant for the bench agent, and one agent (`warren agent`), all at log level info (the
 * default; debug logs a line per stream, which is not what users run) and with the node flags
 * bin/warren.js starts with (src/shared/nodeFlags.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { type ChildGroup, waitForReady, run } from '../../test/support/proc.js';
import { tempDir, WARREN_BIN, type HubReady } from '../../test/support/warren.js';
import { AGENT_NODE_FLAGS, NODE_FLAGS } from '../../src/shared/nodeFlags.js';

export interface BenchHub {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  readonly caPin: string;
  readonly caPem: string;
  readonly dataDir: string;
  readonly adminToken: string;
  /** Port of the forward stand-in's listener, when this hub is the stand-in. */
  readonly standInPort?: number;
  readonly udsPath?: string;
}

const ENV = { WARREN_LOG_LEVEL: 'info' };

/**
 * Extra node flags for hub and agent processes, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"
 * to profile them (profiles are written when they exit at the end of the run).
 */
const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);
const NODE_ARGS = [...NODE_FLAGS, ...words(process.env.BENCH_NODE_ARGS)];
/**
 * The agent starts with its own role's flags, as its service does (systemd unit, manifest, single-file
 * build); BENCH_AGENT_FLAGS="…" replaces them (an A/B of agent flags), BENCH_NODE_ARGS is added as well.
 */
const AGENT_NODE_ARGS = [...(process.env.BENCH_AGENT_FLAGS !== undefined ? words(process.env.BENCH_AGENT_FLAGS) : AGENT_NODE_FLAGS), ...words(process.env.BENCH_NODE_ARGS)];

/**
 * The connection-rate test opens streams as one principal as fast as it can: the per-principal rate
 * quota (1,000/s by default) would measure the quota, not the data path. Every other limit stays on.
 */
const UNLIMITED = ['--max-new-streams-per-second', '0'];

/** BENCH_FROM_SRC=1 runs hub and agent from src/ through tsx (no build needed while profiling). */
const WARREN = process.env.BENCH_FROM_SRC ? ['--import', 'tsx', path.resolve('src/cli/main.ts')] : [WARREN_BIN];

/**
 * `node … warren hub` or `… warren agent` as it is deployed: with its role's V8 flags (which the
 * shebang of bin/warren.js would give, but not when it is started as `node bin/warren.js`).
 */
export function warrenCommand(role: 'hub' | 'agent'): [string, ...string[]] {
  return [process.execPath, ...(role === 'hub' ? NODE_ARGS : AGENT_NODE_ARGS), ...WARREN, role];
}

export async function startBenchHub(opts: { group: ChildGroup; standIn?: { target: string; user: string }; connectUds?: boolean }): Promise<BenchHub> {
  const dataDir = tempDir('bench-hub');
  const udsPath = opts.connectUds ? path.join(dataDir, 'connect.sock') : undefined;
  const args = opts.standIn
    ? [...NODE_ARGS, '--import', 'tsx', path.resolve('bench/lib/forwardStandIn.ts'), dataDir, opts.standIn.target, opts.standIn.user]
    : [...warrenCommand('hub').slice(1), '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...UNLIMITED, ...(udsPath ? ['--connect-uds', udsPath] : [])];
  const child = opts.group.spawn(process.execPath, args, { ipc: true, env: { ...process.env, ...ENV } });
  const { url, caPin, forward: standInPort } = await waitForReady<HubReady & { forward?: number }>(child, 30_000);
  return {
    child, url, port: Number(new URL(url).port), caPin, dataDir,
    caPem: fs.readFileSync(path.join(dataDir, 'ca.crt'), 'utf8'),
    adminToken: fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim(),
    ...(standInPort ? { standInPort } : {}),
    ...(udsPath ? { udsPath } : {}),
  };
}

export function cliEnv(hub: BenchHub, token = hub.adminToken): Record<string, string> {
  return { WARREN_HUB: hub.url, WARREN_TOKEN: token, WARREN_CA_FINGERPRINT: hub.caPin, WARREN_CONFIG: path.join(hub.dataDir, 'no-login.json') };
}

export async function warrenCli(hub: BenchHub, args: readonly string[], token?: string): Promise<string> {
  const r = await run(process.execPath, [WARREN_BIN, ...args], { env: { ...process.env, ...cliEnv(hub, token) }, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`warren ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function cliJson<T>(hub: BenchHub, args: readonly string[]): Promise<T> {
  return JSON.parse(await warrenCli(hub, [...args, '-o', 'json'])) as T;
}

/** A non-admin user with a grant for `agent` (so every stream pays the real grant check). */
export async function benchUser(hub: BenchHub, user: string, agent: string): Promise<string> {
  await warrenCli(hub, ['grant', '--user', user, '--agent', agent]);
  // Whoever reaches the CONNECT unix socket is the principal "uds" in group warren:uds.
  if (hub.udsPath) await warrenCli(hub, ['grant', '--group', 'warren:uds', '--agent', agent]);
  return (await cliJson<{ token: string }>(hub, ['token', 'create', '--user', user, '--ttl', '24h'])).token;
}

export async function startBenchAgent(opts: { group: ChildGroup; hub: BenchHub; name: string }): Promise<ChildProcess> {
  const token = (await cliJson<{ token: string }>(opts.hub, ['join-token', 'create'])).token;
  const dataDir = tempDir(`bench-agent-${opts.name}`);
  const child = opts.group.spawn(process.execPath, [...warrenCommand('agent').slice(1), '--name', opts.name, '--data-dir', dataDir, '--hub', opts.hub.url], {
    ipc: true, env: { ...process.env, ...ENV, WARREN_JOIN_TOKEN: token },
  });
  await waitForReady(child, 30_000);
  // The ready message is the agent's view; the hub registers the tunnel a moment later. Streams opened in
  // between would be refused (agent offline), so wait for the hub's view too.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const agents = await cliJson<Array<{ name: string; connected: boolean }>>(opts.hub, ['agents', 'ls']);
    if (agents.some((a) => a.name === opts.name && a.connected)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`hub never saw agent ${opts.name} connected`);
}

/** Whether this build has a feature, judged by its help text (other work may land it later). */
export async function hasCliFeature(args: readonly string[], needle: RegExp): Promise<boolean> {
  const r = await run(process.execPath, [WARREN_BIN, ...args, '--help'], { timeoutMs: 15_000 });
  return r.code === 0 && needle.test(r.stdout + r.stderr);
}

/**
 * Creates a hub-side forward `--entry hub:127.0.0.1:0` with the real `warren forwards` command (port 0:
 * the hub picks a free port and reports it as `address`), and waits until it says it is listening.
 */
export async function createHubForward(hub: BenchHub, name: string, target: string): Promise<number> {
  let view = await cliJson<{ listening: boolean; address: string | null }>(hub, ['forwards', 'create', name, '--entry', 'hub:127.0.0.1:0', '--target', target]);
  const deadline = Date.now() + 10_000;
  while (!view.listening || !view.address) {
    if (Date.now() > deadline) throw new Error(`forward ${name} is not listening: ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, 100));
    const all = await cliJson<Array<{ name: string; listening: boolean; address: string | null }>>(hub, ['forwards', 'ls']);
    view = all.find((f) => f.name === name) ?? view;
  }
  return Number(/:(\d+)$/.exec(view.address)![1]);
}

/**
 * Real Warren processes for end-to-end tests: `warren hub` and `warren agent` started from the built
 * CLI (bin/warren.js), on port 0, optionally inside a network namespace, and the CLI run against them.
 * Readiness is the `{ ready: … }` message each process sends over its IPC channel, never a log line or a sleep.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { parseHostPort } from '../../src/shared/hostPort.js';
import { ChildGroup, run, waitForReady, type RunResult } from './proc.js';

export const WARREN_BIN = fileURLToPath(new URL('../../bin/warren.js', import.meta.url));

export interface HubOptions {
  readonly group: ChildGroup;
  /** Network namespace (name as `ip netns` knows it) to run in. */
  readonly netns?: string;
  readonly listen?: string;
  readonly dataDir?: string;
  readonly publicUrl?: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Run this instead of `node bin/warren.js hub`, e.g. an installed `warren hub` (test/e2e/install.test.ts). */
  readonly command?: readonly string[];
  /** Working directory (default: the test's). */
  readonly cwd?: string;
}

export interface HubProc {
  readonly url: string;
  readonly port: number;
  /** The SOCKS5 door's port, when started with --socks-listen. */
  readonly socksPort: number | undefined;
  readonly caPin: string;
  readonly caPath: string;
  readonly adminToken: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  readonly options: HubOptions;
  /** Environment for CLI commands against this hub (admin token unless another is given). */
  env(token?: string): NodeJS.ProcessEnv;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `warren-${prefix}-`));
}

/** What `warren hub` reports on its IPC channel once every door listens (src/cli/readySignal.ts). */
export interface HubReady {
  readonly url: string;
  /** HOST:PORT bound by the main port. */
  readonly listen: string;
  readonly caPin: string;
  /** HOST:PORT bound by the SOCKS5 door, with --socks-listen. */
  readonly socks?: string;
}

/** The port of a HOST:PORT the process reported. */
function portOf(hostPort: string): number {
  const hp = parseHostPort(hostPort);
  if (!hp) throw new Error(`not HOST:PORT in a ready message: ${hostPort}`);
  return hp.port;
}

export async function startHub(opts: HubOptions): Promise<HubProc> {
  const dataDir = opts.dataDir ?? tempDir('hub');
  const [cmd, ...pre] = opts.command ?? [process.execPath, WARREN_BIN, 'hub'];
  const args = [...pre, '--listen', opts.listen ?? '127.0.0.1:0', '--data-dir', dataDir, ...(opts.publicUrl ? ['--public-url', opts.publicUrl] : []), ...(opts.args ?? [])];
  const child = opts.group.spawn(cmd!, args, { netns: opts.netns, ipc: true, cwd: opts.cwd, env: { ...process.env, WARREN_LOG_LEVEL: 'debug', ...opts.env } });
  const { url, listen, caPin, socks } = await waitForReady<HubReady>(child, 20_000);
  const adminToken = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  return {
    url,
    port: portOf(listen),
    socksPort: socks === undefined ? undefined : portOf(socks),
    caPin,
    caPath: path.join(dataDir, 'ca.crt'),
    adminToken,
    dataDir,
    child,
    options: { ...opts, dataDir },
    env(token?: string) {
      return { ...process.env, WARREN_HUB: url, WARREN_TOKEN: token ?? adminToken, WARREN_CA_FINGERPRINT: caPin, WARREN_CONFIG: path.join(dataDir, 'no-login.json') };
    },
  };
}

/** Stops the hub with SIGTERM (graceful drain) and starts it again on the same port and data dir. */
export async function restartHub(hub: HubProc): Promise<HubProc> {
  await stopProcess(hub.child, 'SIGTERM');
  const listen = hub.options.listen ?? '127.0.0.1:0';
  return startHub({ ...hub.options, listen: listen.replace(/:0$/, `:${hub.port}`) });
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Runs `warren ARGS` against the hub (admin unless `token`), in `netns` (default: the hub's own namespace, the one place its address is sure to be reachable). */
export function cli(hub: HubProc, args: readonly string[], opts: { token?: string; netns?: string; input?: Buffer | string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [WARREN_BIN, ...args], { env: hub.env(opts.token), netns: opts.netns ?? hub.options.netns, input: opts.input, timeoutMs: opts.timeoutMs ?? 30_000 });
}

export async function cliJson<T>(hub: HubProc, args: readonly string[], opts: { token?: string; netns?: string } = {}): Promise<T> {
  const r = await cli(hub, [...args, '-o', 'json'], opts);
  if (r.code !== 0) throw new Error(`warren ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export async function joinToken(hub: HubProc, args: readonly string[] = []): Promise<string> {
  return (await cliJson<{ token: string }>(hub, ['join-token', 'create', ...args])).token;
}

export async function accessToken(hub: HubProc, user: string, groups: readonly string[] = []): Promise<string> {
  const args = ['token', 'create', '--user', user, ...(groups.length ? ['--groups', groups.join(',')] : [])];
  return (await cliJson<{ token: string }>(hub, args)).token;
}

export interface AgentOptions {
  readonly group: ChildGroup;
  readonly hub: HubProc;
  readonly name: string;
  readonly token?: string;
  readonly dataDir?: string;
  readonly netns?: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Run this instead of `node bin/warren.js agent`, e.g. the single-file `warren-agent`. */
  readonly command?: readonly string[];
  /** Working directory (default: the test's). */
  readonly cwd?: string;
}

export interface AgentProc {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly options: AgentOptions;
}

/**
 * The join-token flags that allow exactly what an agent's arguments claim (--route; --cluster, or the
 * agent's name for --kube without one; --source-ip), as an admin joining a known agent would.
 */
export function authorityFor(name: string, agentArgs: readonly string[]): string[] {
  const value = (flag: string) => {
    const i = agentArgs.indexOf(flag);
    return i >= 0 ? agentArgs[i + 1] : undefined;
  };
  const routes = value('--route');
  const clusters = value('--cluster') ?? (agentArgs.includes('--kube') ? name : undefined);
  const sourceIps = value('--source-ip');
  return [...(routes ? ['--routes', routes] : []), ...(clusters ? ['--clusters', clusters] : []), ...(sourceIps ? ['--source-ips', sourceIps] : [])];
}

/**
 * Starts an agent (joining with a fresh token that allows what its arguments claim, unless its data dir
 * already holds an identity) and waits for its tunnel. The token goes in WARREN_JOIN_TOKEN, not argv.
 */
export async function startAgent(opts: AgentOptions): Promise<AgentProc> {
  const dataDir = opts.dataDir ?? tempDir(`agent-${opts.name}`);
  const hasIdentity = fs.existsSync(path.join(dataDir, 'identity.json'));
  const token = opts.token ?? (hasIdentity ? undefined : await joinToken(opts.hub, authorityFor(opts.name, opts.args ?? [])));
  const [cmd, ...pre] = opts.command ?? [process.execPath, WARREN_BIN, 'agent'];
  const args = [...pre, '--name', opts.name, '--data-dir', dataDir, ...(opts.args ?? [])];
  const env = { ...process.env, WARREN_LOG_LEVEL: 'debug', ...(token ? { WARREN_JOIN_TOKEN: token } : {}), ...opts.env };
  const child = opts.group.spawn(cmd!, args, { netns: opts.netns, ipc: true, cwd: opts.cwd, env });
  await waitForReady(child, 20_000);
  return { child, dataDir, options: { ...opts, dataDir } };
}

/**
 * Child processes for tests: spawn, wait on output lines and exits with deadlines, kill everything.
 *
 * Every child is started in its own process group (`detached: true`) so teardown can signal the
 * whole group: a child's own children (sshd's per-connection processes, a shell's pipeline) die with it.
 * A synchronous exit hook SIGKILLs whatever is still tracked if the test process dies without teardown.
 *
 * @module
 * @example
 *   const procs = new ChildGroup();
 *   after(() => procs.killAll());
 *   const hub = procs.spawn(process.execPath, ['bin/warren.js', 'hub', '--listen', '127.0.0.1:0']);
 *   const [, addr] = await waitForLine(hub, /listening on (\S+)/, { timeoutMs: 10_000 });
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';

export type StreamName = 'stdout' | 'stderr';

/** How much of a child's output an error message quotes (the tail; whole logs drown the cause). */
const ERROR_TAIL_CHARS = 8_000;

// ---------------------------------------------------------------------------------------------
// Exit hooks: one registry so every support module cleans up on `exit`, SIGINT and SIGTERM.

const exitHooks = new Set<() => void>();
let exitHooksInstalled = false;

/** Runs `fn` synchronously when the process exits or is interrupted; returns an unregister function. */
export function atExit(fn: () => void): () => void {
  if (!exitHooksInstalled) {
    exitHooksInstalled = true;
    const runAll = () => {
      for (const hook of [...exitHooks]) {
        try {
          hook();
        } catch {
          // Best effort: one failing hook must not keep the others from cleaning up.
        }
      }
      exitHooks.clear();
    };
    process.on('exit', runAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      // `once` and re-raise: cleanup runs, then the default action (death by that signal) follows.
      process.once(signal, () => {
        runAll();
        process.kill(process.pid, signal);
      });
    }
  }
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

// ---------------------------------------------------------------------------------------------
// Output capture. Attached at spawn time so a line printed before anyone waits for it is not lost.

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

class OutputLog extends EventEmitter {
  readonly chunks: Record<StreamName, Buffer[]> = { stdout: [], stderr: [] };
  readonly lines: Array<{ stream: StreamName; line: string }> = [];
  private readonly partial: Record<StreamName, string> = { stdout: '', stderr: '' };
  exit: ExitInfo | undefined;
  closed = false;
  /** The payload of the child's first `{ ready: … }` IPC message (children spawned with `ipc: true`). */
  ready: unknown;

  constructor(child: ChildProcess) {
    super();
    this.setMaxListeners(0);
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = child[stream];
      if (!source) continue;
      const decoder = new StringDecoder('utf8');
      source.on('data', (chunk: Buffer) => {
        this.chunks[stream].push(chunk);
        this.addText(stream, decoder.write(chunk));
      });
      source.on('end', () => this.addText(stream, decoder.end()));
    }
    child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      this.emit('exit');
    });
    // 'close' comes after both pipes ended: only then is the collected output complete.
    child.on('close', (code, signal) => {
      this.exit ??= { code, signal };
      for (const stream of ['stdout', 'stderr'] as const) this.flushPartial(stream);
      this.closed = true;
      this.emit('close');
    });
    child.on('error', (err) => this.emit('spawn-error', err));
    child.on('message', (msg: unknown) => {
      if (this.ready !== undefined || typeof msg !== 'object' || msg === null || !('ready' in msg)) return;
      this.ready = msg.ready;
      this.emit('ready');
    });
  }

  text(stream: StreamName): string {
    return Buffer.concat(this.chunks[stream]).toString('utf8');
  }

  describe(): string {
    const tail = (s: string) => (s.length > ERROR_TAIL_CHARS ? `…${s.slice(-ERROR_TAIL_CHARS)}` : s);
    const exit = this.exit ? ` (exited: code=${this.exit.code} signal=${this.exit.signal})` : '';
    return `${exit}\n--- stdout ---\n${tail(this.text('stdout'))}\n--- stderr ---\n${tail(this.text('stderr'))}`;
  }

  private addText(stream: StreamName, text: string): void {
    if (!text) return;
    const parts = (this.partial[stream] + text).split('\n');
    this.partial[stream] = parts.pop() ?? '';
    for (const line of parts) this.pushLine(stream, line.replace(/\r$/, ''));
  }

  private flushPartial(stream: StreamName): void {
    // A last line without a newline still counts once the stream has ended.
    if (this.partial[stream]) this.pushLine(stream, this.partial[stream]);
    this.partial[stream] = '';
  }

  private pushLine(stream: StreamName, line: string): void {
    const entry = { stream, line };
    this.lines.push(entry);
    this.emit('line', entry);
  }
}

const logs = new WeakMap<ChildProcess, OutputLog>();

/** Starts capturing a child's output (idempotent). Children from `ChildGroup.spawn` are already captured. */
export function capture(child: ChildProcess): void {
  if (!logs.has(child)) logs.set(child, new OutputLog(child));
}

function logOf(child: ChildProcess): OutputLog {
  capture(child);
  return logs.get(child)!;
}

/** The last `lines` lines a child printed (stdout and stderr, in order) that match `filter`, for a failure report. */
export function outputTail(child: ChildProcess, lines: number, filter: RegExp = /./): string[] {
  return logOf(child).lines.filter((l) => filter.test(l.line)).slice(-lines).map((l) => l.line);
}

function describeChild(child: ChildProcess): string {
  return `${child.spawnargs.join(' ')} [pid ${child.pid ?? '?'}]`;
}

// ---------------------------------------------------------------------------------------------
// Deadlines

/** Resolves or rejects like `promise`, or rejects with "`what` timed out after `ms` ms" first. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Calls `check` every `everyMs` until it returns a value (not undefined) and resolves with it; a throw counts
 * as "not yet". Rejects once `deadlineMs` has passed, quoting the last error seen.
 */
export async function eventually<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>, everyMs = 50): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`${what}: not within ${deadlineMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting on children

export interface WaitForLineOptions {
  timeoutMs: number;
  /** Which output to search; default 'both'. */
  stream?: StreamName | 'both';
}

/**
 * Resolves with the match of the first output line (past or future) matching `regex`.
 * Rejects when the child exits without printing it or the deadline passes; the error quotes the output.
 */
export function waitForLine(child: ChildProcess, regex: RegExp, opts: WaitForLineOptions): Promise<RegExpMatchArray> {
  const log = logOf(child);
  const wanted = opts.stream ?? 'both';
  // A /g regex keeps state between calls and `match` would drop capture groups: use a plain copy.
  const re = new RegExp(regex.source, regex.flags.replace(/[gy]/g, ''));
  const test = ({ stream, line }: { stream: StreamName; line: string }) =>
    (wanted === 'both' || wanted === stream ? line.match(re) : null) ?? undefined;
  const past = log.lines.map(test).find(Boolean);
  return waitOn(child, 'line', test, past, opts.timeoutMs, `while waiting for ${re} on ${wanted}`);
}

/**
 * Resolves with the payload of the child's `{ ready: … }` IPC message (`warren hub` and `warren agent`
 * send one when spawned with `ipc: true`), past or future. Rejects when the child exits first or the
 * deadline passes; the error quotes the output.
 */
export function waitForReady<T>(child: ChildProcess, timeoutMs: number): Promise<T> {
  const log = logOf(child);
  const ready = () => log.ready as T | undefined;
  return waitOn(child, 'ready', ready, ready(), timeoutMs, 'before sending its ready message');
}

/** `already`, or the first value `check` finds in a later `event`; rejects on exit, spawn failure or the deadline. */
function waitOn<T>(child: ChildProcess, event: 'line' | 'ready', check: (arg: never) => T | undefined, already: T | undefined, timeoutMs: number, waiting: string): Promise<T> {
  if (already !== undefined) return Promise.resolve(already);
  const log = logOf(child);
  return new Promise<T>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      log.off(event, onEvent);
      log.off('close', onClose);
      log.off('spawn-error', onError);
    };
    const fail = (why: string) => {
      cleanup();
      reject(new Error(`${describeChild(child)}: ${why} ${waiting}${log.describe()}`));
    };
    // The event's argument is what `check` was written for: a log line for 'line', nothing for 'ready'.
    const onEvent = (arg: unknown) => {
      const found = check(arg as never);
      if (found === undefined) return;
      cleanup();
      resolve(found);
    };
    const onClose = () => fail('exited');
    const onError = (err: Error) => fail(`failed to start (${err.message})`);
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    log.on(event, onEvent);
    log.on('spawn-error', onError);
    if (log.closed) onClose();
    else log.on('close', onClose);
  });
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Resolves when the child has exited and its output pipes have closed; rejects after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<ExitResult> {
  const log = logOf(child);
  const result = (): ExitResult => ({
    code: log.exit?.code ?? null,
    signal: log.exit?.signal ?? null,
    stdout: log.text('stdout'),
    stderr: log.text('stderr'),
  });
  if (log.closed) return Promise.resolve(result());
  return new Promise<ExitResult>((resolve, reject) => {
    const onClose = () => {
      clearTimeout(timer);
      log.off('spawn-error', onClose);
      resolve(result());
    };
    const timer = setTimeout(() => {
      log.off('close', onClose);
      log.off('spawn-error', onClose);
      reject(new Error(`${describeChild(child)}: did not exit within ${timeoutMs} ms${log.describe()}`));
    }, timeoutMs);
    log.once('close', onClose);
    // A spawn failure (ENOENT) emits 'error' and then 'close'; listening here keeps it from throwing.
    log.once('spawn-error', onClose);
  });
}

// ---------------------------------------------------------------------------------------------
// Spawning

export interface SpawnOpts extends SpawnOptions {
  /** Run inside this network namespace (via `ip netns exec`, which execs the command in place). */
  netns?: string;
  /** Add an IPC channel (stdio fd 3), for children that report readiness by message (`waitForReady`). */
  ipc?: boolean;
}

function commandLine(cmd: string, args: readonly string[], netns: string | undefined): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, [...args]];
}

/** Signals a child's whole process group; quiet when it is already gone. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is empty already.
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Tracks every child it starts so one `killAll()` in teardown stops them all, even on failure. */
export class ChildGroup {
  private readonly children = new Set<ChildProcess>();
  private readonly unhook: () => void;

  constructor() {
    this.unhook = atExit(() => {
      for (const child of this.children) signalGroup(child, 'SIGKILL');
    });
  }

  /** Spawns with stdio piped (unless `opts.stdio` says otherwise) and output captured for `waitForLine`. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOpts = {}): ChildProcess {
    const { netns, ipc, ...rest } = opts;
    const [file, argv] = commandLine(cmd, args, netns);
    const child = nodeSpawn(file, argv, { stdio: ipc ? ['pipe', 'pipe', 'pipe', 'ipc'] : 'pipe', ...rest, detached: true });
    capture(child);
    // Without a listener a spawn failure would be thrown as an uncaught 'error'; waiters see it instead.
    child.on('error', () => {});
    // Writing to a child that died must not crash the test process with EPIPE.
    child.stdin?.on('error', () => {});
    this.children.add(child);
    return child;
  }

  /** SIGTERM every group, SIGKILL what is left after `graceMs`, and wait until all have exited. */
  async killAll(graceMs = 3_000): Promise<void> {
    const children = [...this.children];
    this.children.clear();
    await Promise.all(children.map((child) => stopChild(child, graceMs)));
  }

  /** Stops one child now (same escalation as `killAll`) and forgets it. */
  async kill(child: ChildProcess, graceMs = 3_000): Promise<void> {
    this.children.delete(child);
    await stopChild(child, graceMs);
  }

  /** Ends tracking at exit; call once the group will not be used again. */
  dispose(): void {
    this.unhook();
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (isRunning(child)) {
    signalGroup(child, 'SIGTERM');
    try {
      await waitForExit(child, graceMs);
    } catch {
      signalGroup(child, 'SIGKILL');
      await waitForExit(child, 5_000).catch(() => {});
    }
  }
  // The leader may be gone while other members of its group (its children) live on.
  signalGroup(child, 'SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// One-shot commands

export interface RunOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  netns?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The exact stdout bytes, for binary output. */
  stdoutBytes: Buffer;
}

/** Runs a command to completion; never rejects on a non-zero exit, only on a deadline or spawn failure. */
export async function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const [file, argv] = commandLine(cmd, args, opts.netns);
  const child = nodeSpawn(file, argv, { stdio: 'pipe', detached: true, env: opts.env, cwd: opts.cwd });
  capture(child);
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input);
  try {
    const exit = await Promise.race([waitForExit(child, timeoutMs), spawnError]);
    return { ...exit, stdoutBytes: Buffer.concat(logOf(child).chunks.stdout) };
  } catch (err) {
    signalGroup(child, 'SIGKILL');
    throw err;
  }
}

/** Like `run`, but rejects unless the command exits 0; the error quotes the command and its output. */
export async function runOk(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) {
    const where = opts.netns ? ` (in netns ${opts.netns})` : '';
    throw new Error(
      `${cmd} ${args.join(' ')}${where} failed: code=${result.code} signal=${result.signal}\n${result.stderr}${result.stdout}`,
    );
  }
  return result;
}

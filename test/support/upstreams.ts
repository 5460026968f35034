/**
 * Starts `test/fixtures/upstream.mjs` (in a namespace or not) and knows its seeded byte stream.
 *
 * @module
 * @example
 *   const up = await startUpstream('http', { group: lab.group, netns: lab.ns('site'), listen: '10.20.1.2:8080', body: 'one' });
 *   const src = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: 1 << 20, seed: 's' });
 *   assert.equal(receivedSha, seededSha256('s', 1 << 20));
 */
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type ChildGroup, waitForLine } from './proc.js';

export type UpstreamMode = 'http' | 'echo' | 'sink' | 'source' | 'halfclose';

export const UPSTREAM_SCRIPT = fileURLToPath(new URL('../fixtures/upstream.mjs', import.meta.url));

export interface UpstreamOptions {
  /** Owner of the process (a `ChildGroup`, or `lab.group`): its teardown stops the upstream. */
  group: ChildGroup;
  /** Network namespace to run in (`lab.ns('site')`); default: this process's namespace. */
  netns?: string;
  /** `ADDR:PORT`; port 0 picks a free one. */
  listen: string;
  /** http: the marker in `GET /`'s body. */
  body?: string;
  /** source: how many bytes each connection gets. */
  bytes?: number;
  /** source and http `/bytes`: the seed of the byte stream (default "0"). */
  seed?: string;
  /** How long to wait for the listening line; default 10 s. */
  timeoutMs?: number;
}

export interface Upstream {
  /** `ADDR:PORT` as bound, e.g. `10.20.1.2:8080` or `127.0.0.1:41235`. */
  address: string;
  host: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startUpstream(mode: UpstreamMode, opts: UpstreamOptions): Promise<Upstream> {
  const args = [UPSTREAM_SCRIPT, mode, '--listen', opts.listen];
  if (opts.body !== undefined) args.push('--body', opts.body);
  if (opts.bytes !== undefined) args.push('--bytes', String(opts.bytes));
  if (opts.seed !== undefined) args.push('--seed', opts.seed);
  const child = opts.group.spawn(process.execPath, args, { netns: opts.netns, stdio: ['ignore', 'pipe', 'pipe'] });
  const [, json] = await waitForLine(child, /^(\{"listening":.*\})$/, {
    timeoutMs: opts.timeoutMs ?? 10_000,
    stream: 'stdout',
  });
  const address = (JSON.parse(json!) as { listening: string }).listening;
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(address)!;
  return {
    address,
    host: m[1]!,
    port: Number(m[2]),
    child,
    stop: () => opts.group.kill(child),
  };
}

// Same generator as in upstream.mjs: AES-128-CTR keystream, key = sha256(seed)[0..16], IV 0.
function keystream(seed: string) {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

/** The first `n` bytes of the seeded stream the upstream's `source` mode and `/bytes` send. */
export function seededBytes(seed: string, n: number): Buffer {
  return keystream(seed).update(Buffer.alloc(n));
}

/** Hex sha256 of `seededBytes(seed, n)`, computed in chunks so large `n` needs no large buffer. */
export function seededSha256(seed: string, n: number): string {
  const cipher = keystream(seed);
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(64 * 1024);
  for (let left = n; left > 0; left -= chunk.length) {
    hash.update(cipher.update(left >= chunk.length ? chunk : chunk.subarray(0, left)));
  }
  return hash.digest('hex');
}

/** Hex sha256 of a buffer, to compare with what `sink` and `halfclose` report. */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * An in-process client of the hub's HTTP CONNECT door, for end-to-end tests that need to control a
 * stream byte by byte (pause it, count it, time it) rather than go through `warren connect`.
 *
 * @module
 * @example
 *   const socket = await connectThroughHub(hub, `alpha:${upstream.port}`);
 *   socket.end(payload);          // half-close: the target still answers
 *   socket.resume();              // returned paused: nothing is read until the caller wants it
 */
import fs from 'node:fs';
import tls from 'node:tls';
import { createCipheriv, createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import assert from 'node:assert/strict';
import { type ChildGroup, withDeadline } from './proc.js';
import { startUpstream } from './upstreams.js';

export interface HubAddress {
  /** `https://HOST:PORT` as the hub logged it. */
  readonly url: string;
  /** PEM file of the hub CA. */
  readonly caPath: string;
  readonly adminToken: string;
}

export interface ConnectOptions {
  /** Access token for `Proxy-Authorization: Bearer`; default: the admin token. */
  readonly token?: string;
  /** Deadline for TLS + the hub's answer; default 10 s. */
  readonly timeoutMs?: number;
}

/** The hub refused the CONNECT: its status line and (JSON) body. */
export class ConnectRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`hub answered ${status} to CONNECT: ${body}`);
  }
}

const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Opens TLS to the hub (trusting only its CA), sends `CONNECT target`, and resolves with the socket once
 * the hub answered 200. The socket is returned *paused*, with any bytes that arrived together with the
 * answer put back into it: attach a reader and `resume()` (or `pipe()`) to consume it.
 * `allowHalfOpen` is on, so `end()` half-closes toward the target and the answer can still be read.
 *
 * Caveat (Node 20): `end()` on a TLS socket runs TLSWrap::DoShutdown, which calls SSL_shutdown() a
 * second time; that call reads and throws away application data already received but not yet read
 * (e.g. while the socket is paused), and the stream then ends "cleanly" short of its data. So half-close
 * only when nothing is in flight toward us (a `sink` answers after EOF); to read a `source`, read to
 * EOF first and end afterwards.
 */
export async function connectThroughHub(hub: HubAddress, target: string, opts: ConnectOptions = {}): Promise<tls.TLSSocket> {
  const url = new URL(hub.url);
  const socket = tls.connect({
    // allowHalfOpen is honoured by tls.connect (Node ≥ 12.13) but missing from @types/node's ConnectionOptions.
    ...({ allowHalfOpen: true } as tls.ConnectionOptions),
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 443),
    ca: fs.readFileSync(hub.caPath),
    ALPNProtocols: ['http/1.1'],
  });
  socket.setNoDelay(true);
  const answered = new Promise<tls.TLSSocket>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
    };
    // A refused or failed socket is thrown away, but may still emit: an end before the TLS handshake
    // finished makes Node's own 'end' handler destroy it with ECONNRESET ("Client network socket
    // disconnected before secure TLS connection was established") right after ours ran.
    const discard = () => {
      cleanup();
      socket.on('error', () => undefined);
      socket.destroy();
    };
    const onError = (err: Error) => {
      discard();
      reject(err);
    };
    const onEnd = () => {
      discard();
      const text = head.toString('utf8');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      reject(new ConnectRefused(status, text.slice(text.indexOf('\r\n\r\n') + 4)));
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEADER_BYTES) onError(new Error('CONNECT answer header too large'));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
      if (status !== 200) {
        // A refusal carries a JSON body and the hub closes: collect it until the end.
        socket.off('data', onData);
        socket.on('data', (c: Buffer) => (head = Buffer.concat([head, c])));
        return;
      }
      cleanup();
      socket.pause();
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.once('secureConnect', () => {
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${opts.token ?? hub.adminToken}\r\n\r\n`);
    });
  });
  try {
    return await withDeadline(answered, opts.timeoutMs ?? 10_000, `CONNECT ${target} through ${hub.url}`);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

export interface ReadResult {
  /** Bytes read before the stream ended or failed. */
  readonly bytes: number;
  /** Hex sha256 of those bytes. */
  readonly sha256: string;
  /** True when the stream ended with a clean EOF (no error). */
  readonly clean: boolean;
  readonly error?: Error;
  /** ms from the call to the end of the stream. */
  readonly elapsedMs: number;
}

/**
 * Reads (and hashes) everything until the stream ends (EOF) or fails; never rejects. Resumes a paused
 * socket. A half-open socket's write side is left alone: resolving on 'end' does not wait for 'close'.
 * `onData` sees every chunk (e.g. to act once some bytes have arrived).
 */
export function readAll(stream: Readable, onData?: (chunk: Buffer, total: number) => void): Promise<ReadResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let error: Error | undefined;
    let done = false;
    const finish = (clean: boolean) => {
      if (done) return;
      done = true;
      resolve({ bytes, sha256: hash.digest('hex'), clean: clean && !error, ...(error ? { error } : {}), elapsedMs: performance.now() - started });
    };
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      onData?.(chunk, bytes);
    });
    stream.once('end', () => finish(true));
    stream.on('error', (err) => (error ??= err));
    // 'close' without 'end' first: the stream was torn down (reset, destroyed) before its EOF.
    stream.once('close', () => finish(false));
    stream.resume();
  });
}

/**
 * After a clean EOF on a half-open socket (`allowHalfOpen`), tells a peer's reset from its FIN: writes
 * one byte and resolves with the error the kernel reports (`ECONNRESET` when an RST came in: the kernel
 * keeps its error for the next call on the socket), or undefined when the write is accepted (a FIN: the
 * peer ended cleanly, or the connection is still open).
 *
 * Why a clean EOF can hide an RST: Node 20's libuv (1.46) takes a short read together with POLLHUP as
 * end-of-file without reading again, so an RST that arrives with the last bytes is reported as 'end'
 * and its ECONNRESET is never read (libuv/libuv#4992, fixed by libuv/libuv#4997). A client that reads
 * to EOF and must know whether the stream finished asks the socket once more, as this does.
 */
export function errorAfterEof(socket: Writable): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.writableEnded) {
      resolve(new Error('the socket was closed before the EOF could be checked'));
      return;
    }
    socket.on('error', () => undefined); // reported through the write callback
    socket.write(Buffer.alloc(1), (err) => resolve(err ?? undefined));
  });
}

/**
 * Writes `n` bytes of the seeded stream (the same AES-128-CTR keystream as test/fixtures/upstream.mjs)
 * with backpressure, then half-closes; resolves with the hex sha256 of what was written. Rejects if
 * the stream fails or closes before everything was written.
 */
export async function writeSeeded(stream: Writable, seed: string, n: number, chunkSize = 256 * 1024): Promise<string> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  const hash = createHash('sha256');
  for (let left = n; left > 0; ) {
    const size = Math.min(chunkSize, left);
    left -= size;
    const chunk = cipher.update(size === chunkSize ? zeros : zeros.subarray(0, size));
    hash.update(chunk);
    if (!stream.write(chunk)) await drained(stream);
  }
  stream.end();
  return hash.digest('hex');
}

function drained(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onError);
    };
    const onDrain = () => (cleanup(), resolve());
    const onError = (err: Error) => (cleanup(), reject(err));
    const onClose = () => (cleanup(), reject(new Error('stream closed while writing')));
    stream.once('drain', onDrain);
    stream.once('close', onClose);
    stream.once('error', onError);
  });
}

/** MB/s (10^6 bytes per second) for `bytes` in `ms`, rounded to one decimal. */
export function mbPerSec(bytes: number, ms: number): number {
  return Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;
}

/** Echo through the hub to `agent`'s own host: the bytes that come back are the bytes sent (4 MiB, sha256). */
export async function assertCarriesAStream(group: ChildGroup, hub: HubAddress, agent: string): Promise<void> {
  const echo = await startUpstream('echo', { group, listen: '127.0.0.1:0' });
  const socket = await connectThroughHub(hub, `${agent}:${echo.port}`);
  const answer = readAll(socket);
  const sent = await writeSeeded(socket, `stream-${agent}`, 4 * 2 ** 20);
  const got = await answer;
  socket.destroy();
  await echo.stop();
  assert.ok(got.clean, `the stream through ${agent} failed: ${got.error?.message ?? 'closed early'}`);
  assert.equal(got.bytes, 4 * 2 ** 20);
  assert.equal(got.sha256, sent);
}

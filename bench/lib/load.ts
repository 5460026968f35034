/**
 * The load generator, run as a child of bench/run.ts (IPC): it receives `{ id, endpoint, test }`,
 * runs one bounded test through the endpoint against bench/lib/target.ts and answers `{ id, result }`.
 *
 *   bulk   N connections each download bytes/N ('D' mode); MB/s over the time from the first request
 *          to the last byte (connection set-up excluded); stops at the deadline, whatever was moved counts
 *   rtt    one connection, 64-byte ping-pong ('E' mode); p50/p99 in µs after a warm-up
 *   conns  P workers each loop connect → 64 B round trip → close (graceful, both FINs) until the deadline
 *   lone   the same, one connection at a time; p50/p99 in µs from the start of the connect to the 64 B
 *          echo (what a user opening one ssh or kubectl connection waits), conns/s over the whole loop
 */
import type { Duplex } from 'node:stream';
import { closeGracefully, openEndpoint, type Endpoint } from './endpoints.js';
import { percentile } from './stats.js';

export type LoadTest =
  | { readonly kind: 'bulk'; readonly conns: number; readonly bytes: number; readonly seconds: number }
  | { readonly kind: 'rtt'; readonly count: number; readonly seconds: number }
  | { readonly kind: 'conns'; readonly parallel: number; readonly seconds: number; readonly max: number }
  | { readonly kind: 'lone'; readonly count: number; readonly seconds: number };

export interface BulkResult { readonly bytes: number; readonly seconds: number; readonly mbps: number; readonly complete: boolean }
export interface RttResult { readonly count: number; readonly p50us: number; readonly p99us: number }
export interface ConnsResult { readonly done: number; readonly errors: number; readonly seconds: number; readonly perSecond: number; readonly firstError?: string }
export interface LoneResult { readonly count: number; readonly errors: number; readonly p50us: number; readonly p99us: number; readonly perSecond: number; readonly firstError?: string }
export type LoadResult = BulkResult | RttResult | ConnsResult | LoneResult;

export async function runTest(ep: Endpoint, t: LoadTest): Promise<LoadResult> {
  if (t.kind === 'bulk') return bulk(ep, t);
  if (t.kind === 'rtt') return rtt(ep, t);
  if (t.kind === 'lone') return lone(ep, t);
  return conns(ep, t);
}

function downloadRequest(n: number): Buffer {
  const b = Buffer.alloc(9);
  b[0] = 0x44; // 'D'
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

async function bulk(ep: Endpoint, t: Extract<LoadTest, { kind: 'bulk' }>): Promise<BulkResult> {
  const per = Math.floor(t.bytes / t.conns);
  const sockets = await Promise.all(Array.from({ length: t.conns }, () => openEndpoint(ep)));
  let received = 0;
  let complete = true;
  let started = process.hrtime.bigint();
  // A process per connection (`warren connect`) is "open" at spawn, long before it has dialled the hub;
  // its start-up is not throughput, so there the clock starts at the first byte instead.
  const fromFirstByte = ep.kind === 'exec';
  let firstByte = false;
  const finished = sockets.map(
    (s) =>
      new Promise<void>((resolve) => {
        let mine = 0;
        s.on('data', (c: Buffer) => {
          if (fromFirstByte && !firstByte) {
            firstByte = true;
            started = process.hrtime.bigint();
          }
          mine += c.length;
          received += c.length;
        });
        s.once('end', () => {
          if (mine < per) complete = false;
          s.destroy();
          resolve();
        });
        s.once('close', () => resolve());
        s.once('error', () => ((complete = false), resolve()));
        s.resume();
        s.write(downloadRequest(per));
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(() => ((complete = false), resolve()), t.seconds * 1000)));
  await Promise.race([Promise.all(finished), deadline]);
  clearTimeout(timer);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const bytes = received;
  await Promise.all(sockets.map((s) => closeGracefully(s, 500)));
  return { bytes, seconds, mbps: bytes / seconds / 1e6, complete };
}

/** Resolves with the next `n` bytes read from `s` (which must be flowing through `take`). */
function reader(s: Duplex) {
  let buffered = 0;
  let want = 0;
  let wake: (() => void) | undefined;
  let ended = false;
  s.on('data', (c: Buffer) => {
    buffered += c.length;
    if (wake && buffered >= want) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  s.once('end', () => ((ended = true), wake?.()));
  s.once('close', () => ((ended = true), wake?.()));
  return (n: number): Promise<void> => {
    if (buffered >= n) {
      buffered -= n;
      return Promise.resolve();
    }
    want = n;
    return new Promise<void>((resolve, reject) => {
      wake = () => {
        if (buffered >= n) {
          buffered -= n;
          resolve();
        } else reject(new Error('stream ended during a round trip'));
      };
      if (ended) wake();
    });
  };
}

async function rtt(ep: Endpoint, t: Extract<LoadTest, { kind: 'rtt' }>): Promise<RttResult> {
  const s = await openEndpoint(ep);
  try {
    const take = reader(s);
    s.resume();
    const ping = Buffer.alloc(64, 0x70);
    s.write(Buffer.from('E'));
    const samples: number[] = [];
    const warmup = Math.min(200, Math.floor(t.count / 10));
    const end = Date.now() + t.seconds * 1000;
    for (let i = 0; i < warmup + t.count && Date.now() < end; i++) {
      const t0 = process.hrtime.bigint();
      s.write(ping);
      await take(64);
      if (i >= warmup) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    samples.sort((a, b) => a - b);
    return { count: samples.length, p50us: percentile(samples, 0.5), p99us: percentile(samples, 0.99) };
  } finally {
    await closeGracefully(s);
  }
}

/** Connect, one 64 B round trip, graceful close; resolves with µs from the start to the echo. */
async function oneConnection(ep: Endpoint): Promise<number> {
  const t0 = process.hrtime.bigint();
  const s = await openEndpoint(ep);
  try {
    const take = reader(s);
    const closed = new Promise<void>((resolve, reject) => {
      s.once('close', () => resolve());
      s.once('error', reject);
    });
    s.resume();
    const msg = Buffer.alloc(65, 0x71);
    msg[0] = 0x45; // 'E'
    s.write(msg);
    await take(64);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    s.end();
    await closed;
    return us;
  } finally {
    s.destroy();
  }
}

async function conns(ep: Endpoint, t: Extract<LoadTest, { kind: 'conns' }>): Promise<ConnsResult> {
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = Date.now();
  const end = started + t.seconds * 1000;
  const worker = async () => {
    while (Date.now() < end && done + errors < t.max) {
      try {
        await oneConnection(ep);
        done++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: t.parallel }, worker));
  const seconds = (Date.now() - started) / 1000;
  return { done, errors, seconds, perSecond: done / seconds, ...(firstError ? { firstError } : {}) };
}

async function lone(ep: Endpoint, t: Extract<LoadTest, { kind: 'lone' }>): Promise<LoneResult> {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const started = Date.now();
  const end = started + t.seconds * 1000;
  while (Date.now() < end && samples.length + errors < t.count) {
    try {
      samples.push(await oneConnection(ep));
    } catch (err) {
      errors++;
      firstError ??= (err as Error).message;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  samples.sort((a, b) => a - b);
  return {
    count: samples.length, errors, p50us: percentile(samples, 0.5), p99us: percentile(samples, 0.99),
    perSecond: samples.length / seconds, ...(firstError ? { firstError } : {}),
  };
}

// IPC mode: bench/run.ts forks this file.
if (process.send) {
  process.on('message', (msg: { id: number; endpoint: Endpoint; test: LoadTest }) => {
    runTest(msg.endpoint, msg.test).then(
      (result) => process.send!({ id: msg.id, result }),
      (err: unknown) => process.send!({ id: msg.id, error: err instanceof Error ? err.stack : String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

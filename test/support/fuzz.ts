/**
 * Shared parts of the fuzz tests (test/fuzz/): byte mutation of valid inputs, the number of runs, and a
 * tally of cases that each file prints at its end.
 *
 * Mutation keeps inputs close to valid ones, so the parsers' deep paths are reached as often as their
 * first checks: a valid message with bytes flipped, replaced, inserted, deleted, duplicated, or cut
 * short (the AFL "havoc" operators, a few at a time).
 *
 * `FUZZ_SCALE=10` multiplies every run count (a longer hunt); the seed fast-check prints on a failure
 * replays it (`FUZZ_SEED=… FUZZ_PATH=…`).
 *
 * @module
 * @example
 *   fc.assert(fc.property(mutated(fc.constant(Buffer.from('CONNECT a:1 HTTP/1.1\r\n\r\n'))), (bytes) => …), runs(10_000));
 */
import fc from 'fast-check';

/** Multiplier of every run count (FUZZ_SCALE, default 1). */
export const FUZZ_SCALE = Math.max(0.01, Number(process.env.FUZZ_SCALE ?? 1) || 1);

/** fast-check parameters: `n` runs (times FUZZ_SCALE), a replayed seed when given, and a time bound. */
export function runs(n: number, timeLimitMs = 120_000): fc.Parameters<unknown> {
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  return {
    numRuns: Math.max(1, Math.round(n * FUZZ_SCALE)),
    ...(seed === undefined ? {} : { seed, ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}) }),
    // A run that takes this long is a hang, not a slow machine: it fails rather than stopping early.
    plugins: [fc.interruptAfterTimeLimit(timeLimitMs * Math.max(1, FUZZ_SCALE), { failOnInterrupt: true })],
  };
}

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; len: number }
  | { op: 'dup'; at: number; len: number }
  | { op: 'cut'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    op: fc.constant('set' as const), at: fc.nat(),
    // Bytes that mean something to text protocols, as well as any byte.
    byte: fc.oneof(fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x2e, 0x2f, 0x25, 0x3a, 0x3f, 0x40, 0x5b, 0x5d, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })),
  }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
);

/** Applies `mutations` to a copy of `input`. */
export function applyMutations(input: Uint8Array, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + (m.op === 'insert' ? 1 : 0));
    switch (m.op) {
      case 'flip':
        if (b.length) b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        if (b.length) b[at] = m.byte;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case 'dup':
        b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
        break;
      case 'cut':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

/** `valid` with one to four mutations applied (the valid input itself now and then). */
export function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.array(mutation, { minLength: 0, maxLength: 4 })).map(([v, ms]) => applyMutations(v, ms));
}

/** As `mutated`, for text: the bytes read back as latin1 (every byte survives as one char). */
export function mutatedText(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return mutated(valid.map((s) => Buffer.from(s, 'latin1'))).map((b) => b.toString('latin1'));
}

/** Counts cases per property, for the summary line each fuzz file prints (docs/reliability.md). */
export class CaseTally {
  private readonly counts = new Map<string, number>();

  /** Wraps a predicate so each call is counted under `name`. */
  count<A extends unknown[], R>(name: string, fn: (...args: A) => R): (...args: A) => R {
    return (...args) => {
      this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      return fn(...args);
    };
  }

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  summary(): string {
    return `${this.total} cases: ${[...this.counts].map(([k, v]) => `${k} ${v}`).join(', ')}`;
  }
}

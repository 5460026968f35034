/**
 * Two in-memory duplex streams joined back to back: what one side writes, the other reads; ending one
 * side's write half ends the other's read half (half-close carried); destroying one destroys the other.
 * Node 20 has no `stream.duplexPair` (it came in Node 22); this is the same idea, with backpressure:
 * a write completes when the peer's reader has taken the chunk.
 *
 * The hub uses it where a library wants a socket of its own (the web shell's SSH client) but the bytes
 * must go through the opener's relay (grants, revocation, audit, metrics).
 */
import { Duplex } from 'node:stream';

class Side extends Duplex {
  peer!: Side;
  /** The callback of our last write, called once the peer's reader asks for more. */
  private pendingWrite: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    const cb = this.peer.pendingWrite;
    this.peer.pendingWrite = undefined;
    cb?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length === 0) process.nextTick(cb);
    else if (this.peer.push(chunk)) cb();
    else this.pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.();
    if (!this.peer.destroyed) this.peer.destroy(err ?? undefined);
    cb(err);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new Side();
  const b = new Side();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

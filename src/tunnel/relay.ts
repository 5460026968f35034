/**
 * Carries bytes between two duplex streams — a client socket and a tunnel stream, or a tunnel stream
 * and a target socket — with TCP half-close preserved: each direction ends on its own when its source
 * sends EOF, so a client that shuts its write side still receives the whole answer. Closing both
 * directions on the first EOF is the classic relay bug (`nc -N` through chisel) this avoids.
 *
 * When either side fails or disappears before finishing cleanly, the other is aborted hard: a TCP
 * socket gets an RST (not a FIN, which would look like a clean end to the peer), a tunnel stream gets
 * RST_STREAM(CANCEL).
 */
import net from 'node:net';
import { constants as h2, type Http2Session } from 'node:http2';
import type { Duplex } from 'node:stream';

export interface RelayCounts {
  /** Bytes read from `a` and written to `b`. */
  readonly aToB: number;
  readonly bToA: number;
  /** Set when the relay ended abnormally (an error, a reset, or a side that vanished mid-stream). */
  readonly error?: Error;
}

interface H2StreamLike extends Duplex {
  rstCode?: number;
  readonly aborted?: boolean;
  readonly session?: { readonly destroyed: boolean } | undefined;
  close(code?: number): void;
}

function isH2Stream(s: Duplex): s is H2StreamLike {
  return 'rstCode' in s && typeof (s as H2StreamLike).close === 'function' && 'session' in s;
}

/** Ends a stream abruptly so the far end sees a failure, never a clean EOF. */
export function abortStream(s: Duplex): void {
  if (s.destroyed) return;
  if (isH2Stream(s)) {
    s.close(h2.NGHTTP2_CANCEL);
    return;
  }
  // A TLS socket's TCP socket is its `_parent`: resetting that is what makes the peer see an RST.
  const parent = (s as Duplex & { _parent?: unknown })._parent;
  const raw = parent instanceof net.Socket ? parent : s;
  if (raw instanceof net.Socket && !raw.destroyed && typeof raw.resetAndDestroy === 'function') {
    try {
      raw.resetAndDestroy();
      if (raw !== s) s.destroy();
      return;
    } catch {
      // not a TCP handle (e.g. a pipe): fall through
    }
  }
  s.destroy();
}

/**
 * Tears a whole tunnel session down so that its open streams end as *aborted* (RST_STREAM CANCEL),
 * never as a clean EOF. Node's `session.destroy()` without a code closes open streams with NO_ERROR, and
 * a stream closed with NO_ERROR before its END_STREAM ends its readable side normally: a relay then
 * ends the client's socket with a FIN, and a transfer cut off by an agent removal, a keepalive timeout
 * or a drain timeout looks complete to the client.
 */
export function abortSession(session: Http2Session, err?: Error): void {
  if (!session.destroyed) session.destroy(err, h2.NGHTTP2_CANCEL);
}

function endedCleanly(s: Duplex): boolean {
  if (s.errored) return false;
  if (isH2Stream(s) && ((s.rstCode !== undefined && s.rstCode !== h2.NGHTTP2_NO_ERROR) || s.aborted)) return false;
  return s.readableEnded && s.writableFinished;
}

export function relay(a: Duplex, b: Duplex): Promise<RelayCounts> {
  return new Promise((resolve) => {
    let aToB = 0;
    let bToA = 0;
    let error: Error | undefined;
    let closed = 0;

    const fail = (err: Error) => {
      error ??= err;
      abortStream(a);
      abortStream(b);
    };
    const onClose = (side: Duplex, name: string) => () => {
      if (!endedCleanly(side)) fail(side.errored ?? new Error(`${name} closed before the stream finished`));
      if (++closed === 2) resolve({ aToB, bToA, ...(error ? { error } : {}) });
    };

    a.on('error', fail);
    b.on('error', fail);
    for (const [side, name] of [[a, 'client side'], [b, 'target side']] as const) {
      const handler = onClose(side, name);
      if (side.closed) queueMicrotask(handler);
      else side.once('close', handler);
    }
    // When its session dies, Node ends an open HTTP/2 stream's readable side like a real END_STREAM
    // (after an 'aborted' event, or with none at all once our side was half-closed), with rstCode 0.
    // So does a stream the peer resets (RST_STREAM) while its data is still buffered here and our side
    // has ended: no 'aborted', only the rstCode says so. carry() would pass either on as a FIN and a
    // cut-off transfer would look complete, so these listeners are registered before carry()'s and turn
    // it into an abort (RST) first.
    for (const side of [a, b]) {
      if (!isH2Stream(side)) continue;
      const session = side.session;
      side.once('aborted', () => fail(new Error('tunnel stream aborted')));
      side.once('end', () => {
        if (side.rstCode !== undefined && side.rstCode !== h2.NGHTTP2_NO_ERROR) fail(new Error(`tunnel stream reset (code ${side.rstCode})`));
        else if (side.aborted || session?.destroyed) fail(new Error('tunnel closed before the stream finished'));
      });
    }
    carry(a, b, (n) => (aToB += n));
    carry(b, a, (n) => (bToA += n));
  });
}

/**
 * How much a batching destination may hold before its source is paused. Writes toward a socket are
 * held (corked) until the end of the event-loop turn so that the ≤16 KiB pieces a TLS or HTTP/2 source
 * delivers go out in one writev instead of one syscall each; this bounds that batch.
 */
const BATCH_BYTES = 64 * 1024;

/** Smaller chunks, alone in their turn, are written at once without tracking the turn (latency). */
const TRACK_FROM = 4 * 1024;

/**
 * One direction of the relay: `src` → `dst`, ending `dst` when `src` ends (half-close), pausing `src`
 * while `dst` is backed up (flow control per stream, as `pipe` does).
 *
 * Why not `src.pipe(dst)`: pipe writes every chunk as it comes, and a socket write is a syscall (on
 * loopback it also runs the receiver's TCP processing). Chunks from a tunnel stream are at most one TLS
 * record (16 KiB), so a relay toward a socket made four syscalls per 64 KiB read; measured on the
 * hub, batching them per event-loop turn cut its CPU per GiB by about a third (docs/benchmarks.md).
 * Toward an HTTP/2 stream there is nothing to gain: the session already sends all frames queued in one
 * turn in one write.
 */
function carry(src: Duplex, dst: Duplex, count: (n: number) => void): void {
  const batch = !isH2Stream(dst);
  const limit = batch ? BATCH_BYTES : 0;
  // Per event-loop turn: the first chunk of a turn goes out at once unless the previous turn brought
  // several (bulk); later chunks of the same turn are held (corked) until the turn ends. So a lone small
  // message (a keystroke, a ping) is neither delayed nor tracked — holding it to the end of the turn
  // added ~20 µs per hop to round trips — while bulk data goes out in one writev per turn.
  let inTurn = false;
  let chunksThisTurn = 0;
  let bulk = false;
  const endTurn = () => {
    inTurn = false;
    bulk = chunksThisTurn > 1;
    chunksThisTurn = 0;
    if (dst.writableCorked > 0) dst.uncork();
  };
  src.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (dst.destroyed || dst.writableEnded) return;
    if (batch) {
      if (inTurn) {
        if (dst.writableCorked === 0) dst.cork();
        chunksThisTurn++;
      } else if (bulk || chunk.length >= TRACK_FROM) {
        inTurn = true;
        chunksThisTurn = 1;
        setImmediate(endTurn);
        if (bulk) dst.cork();
      }
    }
    if (!dst.write(chunk) && dst.writableLength >= limit) src.pause();
  });
  dst.on('drain', () => src.resume());
  // A 'data' listener does not restart a source its owner paused (e.g. a socket handed over paused with
  // its first bytes unshifted); pipe() resumes it explicitly, and so must this.
  if (dst.writableNeedDrain) src.pause();
  else src.resume();
  const onEnd = () => {
    // end() also flushes what is still corked.
    if (!dst.destroyed && !dst.writableEnded) dst.end();
  };
  // A source read before the relay took it (early data) may have delivered its EOF already.
  if (src.readableEnded) onEnd();
  else src.once('end', onEnd);
}

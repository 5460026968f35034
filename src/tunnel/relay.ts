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
import { constants as h2 } from 'node:http2';
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

function endedCleanly(s: Duplex): boolean {
  if (s.errored) return false;
  if (isH2Stream(s) && s.rstCode !== undefined && s.rstCode !== h2.NGHTTP2_NO_ERROR) return false;
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
    a.pipe(b);
    b.pipe(a);
    a.on('data', (chunk: Buffer) => void (aToB += chunk.length));
    b.on('data', (chunk: Buffer) => void (bToA += chunk.length));
  });
}

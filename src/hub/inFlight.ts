/**
 * A count of work under way that someone may wait for to reach zero, with a deadline: a stopping hub
 * waits on it to serve what was sent to it before it stopped listening (a connection in its TLS
 * handshake, a request being answered, a stream being opened) instead of dropping it, and to let open
 * streams finish (src/hub/activeStreams.ts).
 *
 * @example
 *   const inFlight = new InFlight();
 *   const end = inFlight.untilClose(socket);   // counted until end() or the socket's close
 *   await inFlight.settled(10_000);            // zero, or 10 s passed
 */
import type { EventEmitter } from 'node:events';

export class InFlight {
  private count = 0;
  private readonly whenZero = new Set<() => void>();

  /** Counts one piece of work until the function returned is called; later calls do nothing. */
  begin(): () => void {
    this.count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.count === 0) for (const wake of [...this.whenZero]) wake();
    };
  }

  /** begin(), ended at the latest when `socket` (or any emitter of 'close') closes. */
  untilClose(socket: EventEmitter): () => void {
    const end = this.begin();
    socket.once('close', end);
    return end;
  }

  get size(): number {
    return this.count;
  }

  /** Resolves when nothing is counted any more, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.whenZero.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.whenZero.add(done);
    });
  }
}

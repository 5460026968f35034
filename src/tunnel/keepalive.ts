/**
 * PING keepalive with a reply deadline, run on both ends of a tunnel. A ping is sent every interval;
 * if the previous one is still unanswered when the next is due, the peer is declared dead. So a peer
 * that stops answering is detected within two intervals, including a silent partition where no FIN or
 * RST ever arrives.
 */
import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  readonly intervalMs: number;
  readonly onRtt?: (ms: number) => void;
  readonly onDead: () => void;
}

export function startKeepalive(session: Http2Session, opts: KeepaliveOptions): () => void {
  let outstanding = false;
  const timer = setInterval(() => {
    // Only a destroyed session stops the pings: a closing one (GOAWAY, streams still draining) must
    // still notice a peer that died meanwhile, or it lingers with its streams forever.
    if (session.destroyed) return stop();
    if (outstanding) {
      stop();
      opts.onDead();
      return;
    }
    outstanding = true;
    const sent = session.ping((err, durationMs) => {
      if (err) return; // session closing; its own close handling takes over
      outstanding = false;
      opts.onRtt?.(durationMs);
    });
    if (!sent) outstanding = false;
  }, opts.intervalMs);
  timer.unref();
  function stop(): void {
    clearInterval(timer);
  }
  session.once('close', stop);
  return stop;
}

/**
 * Session plumbing both ends share: adopting an accepted socket into an HTTP/2 server, tying a session
 * to its socket's ends, and the graceful drain of a set of sessions.
 */
import type { Http2Server, Http2Session, ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { abortSession } from './relay.js';

/**
 * Hands `socket` to `server` as if the server had accepted it, and returns the session it made; undefined
 * when the server would not take it. Works for a custom ALPN (warren/1, warren-up/1): Node's HTTP/2
 * server only turns away a socket that negotiated nothing or `http/1.1`, as HTTP/1.
 */
export function adoptSocket(server: Http2Server, socket: Duplex): ServerHttp2Session | undefined {
  let session: ServerHttp2Session | undefined;
  // 'session' is emitted synchronously from the 'connection' handler.
  const take = (s: ServerHttp2Session) => (session = s);
  server.once('session', take);
  try {
    server.emit('connection', socket);
  } finally {
    server.off('session', take);
  }
  return session;
}

/**
 * Ties a tunnel or uplink session to the ends of its socket. Those sockets are half-open capable (the
 * hub's TLS server keeps half-open sockets for CONNECT streams, dialHub's for `warren connect`), so the
 * peer's FIN alone would not close the session: a peer that died (the kernel's FIN) would leave it, and
 * every stream on it, waiting for the keepalive deadline. Neither end ever half-closes one on purpose:
 * EOF means the peer is gone, and the streams are aborted. Once the session has ended its socket (done
 * with it, e.g. after a GOAWAY), nothing is left to read, and a peer that died would never send its FIN.
 * Returns that same drop (abort the session, destroy the socket) for the caller's own deadlines.
 */
export function closeWithSocket(session: Http2Session, socket: Duplex): () => void {
  const drop = () => {
    abortSession(session);
    // Not left to the session: a destroyed session stops reading its socket, and was seen (a gateway
    // agent, under load) never to finish with it; a socket neither read nor written keeps nothing alive,
    // so the agent process, waiting for that session to close, exited with nothing said (code 13).
    socket.destroy();
  };
  socket.once('end', drop);
  socket.once('finish', () => socket.destroy());
  return drop;
}

/** GOAWAY to every session: streams in flight may finish; sessions left after `graceMs` are aborted, and the drain ends. */
export async function drainSessions(sessions: Iterable<Http2Session>, graceMs: number): Promise<void> {
  await Promise.all(
    [...sessions].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          const timer = setTimeout(() => {
            abortSession(s);
            // Not waited for past here: Node marks a closing session destroyed at once but emits 'close'
            // only when its socket is done, and under load an uplink session was seen that never did (a
            // stopping hub then hung until it was killed).
            resolve();
          }, graceMs);
          s.once('close', () => (clearTimeout(timer), resolve()));
          s.close();
        }),
    ),
  );
}

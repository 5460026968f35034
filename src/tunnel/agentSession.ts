/**
 * The agent's end of the tunnel (ALPN warren/1): the agent dialled, and now serves HTTP/2 on that socket
 * so the hub can open streams toward it. What the agent answers on each stream is the agent's business
 * (src/agent/agent.ts); this is the session: its deadlines, its keepalive, and the hub's refusal.
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { WarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { decodeGoawayReason } from './goawayReason.js';
import { startKeepalive } from './keepalive.js';
import { adoptSocket, closeWithSocket } from './sessions.js';
import { CONNECTION_WINDOW, type Refusal } from './protocol.js';

export interface AgentSessionOptions {
  readonly pingIntervalMs: number;
  readonly log: Logger;
  /** The hub took the tunnel (its first stream). */
  readonly onTaken: () => void;
  /** The session closed; `refusal` is why the hub refused the agent, if it said so. */
  readonly onClosed: (refusal: Refusal | undefined) => void;
}

export interface AgentSession {
  readonly session: ServerHttp2Session;
  /** Ends the tunnel now: its session and its socket. */
  readonly drop: () => void;
}

/**
 * Serves `server`'s HTTP/2 on the socket the agent dialled. Every step has a deadline: the hub taking the
 * tunnel (its first stream, the info request), then the keepalive.
 */
export function serveAgentSession(server: Http2Server, socket: TLSSocket, o: AgentSessionOptions): AgentSession {
  const session = adoptSocket(server, socket);
  if (!session) {
    socket.destroy();
    throw new WarrenError('WARREN_E_INTERNAL', 'no HTTP/2 session on the hub connection');
  }
  session.setLocalWindowSize(CONNECTION_WINDOW);
  const drop = closeWithSocket(session, socket);
  // A hub that completed TLS but never takes the tunnel (overloaded, or it dropped the connection
  // unnoticed) is given as long as an unanswered ping.
  const admitTimer = setTimeout(() => {
    o.log.warn('hub did not take the tunnel in time; reconnecting');
    drop();
  }, 2 * o.pingIntervalMs);
  session.once('stream', () => {
    clearTimeout(admitTimer);
    o.onTaken();
  });
  const stopKeepalive = startKeepalive(session, {
    intervalMs: o.pingIntervalMs,
    onDead: () => {
      o.log.warn('hub missed its keepalive deadline; reconnecting');
      drop();
    },
  });
  let refusal: Refusal | undefined;
  // No reason in the data: a plain GOAWAY (the hub draining).
  session.on('goaway', (_code: number, _last: number, data?: Buffer) => void (refusal ??= decodeGoawayReason(data)));
  session.on('error', (err: Error) => o.log.debug({ err: err.message }, 'tunnel session error'));
  // The tunnel is over when its session closes, or its socket does: Node emits a destroyed session's
  // 'close' only once it has finished writing to the socket, which a socket destroyed meanwhile may
  // never let it do.
  let over = false;
  const closed = () => {
    if (over) return;
    over = true;
    clearTimeout(admitTimer);
    stopKeepalive();
    o.onClosed(refusal);
  };
  session.once('close', closed);
  socket.once('close', closed);
  return { session, drop };
}

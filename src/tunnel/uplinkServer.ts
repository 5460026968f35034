/**
 * The hub's side of agents' second connection (ALPN warren-up/1): the normal-direction HTTP/2 session
 * an agent opens when it has forward entries, so that a connection accepted on the agent can become a
 * stream *to* the hub. The hub is the HTTP/2 server here. Only an agent certificate that is the one on
 * record for its name is served; every stream is handed on together with that verified agent name, so
 * the consumer can check that the stream really comes from the agent it claims to.
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { WarrenError } from '../shared/errors.js';
import { formatSource } from '../shared/hostPort.js';
import type { Logger } from '../shared/log.js';
import { startKeepalive } from './keepalive.js';
import { admitAgent } from './peerCertificate.js';
import { abortSession } from './relay.js';
import { adoptSocket, closeWithSocket, drainSessions } from './sessions.js';
import { CONNECTION_WINDOW, H2_SETTINGS, MAX_SESSION_MEMORY_MB } from './protocol.js';

export interface UplinkServerOptions {
  /** The agent's record by name (its current certificate serial), or undefined for an unknown agent. */
  readonly lookup: (name: string) => Promise<{ readonly certSerial: string } | undefined>;
  readonly log: Logger;
  readonly pingIntervalMs: number;
  /** A stream the agent opened; `agent` is the name its verified certificate carries. */
  readonly onStream: (agent: string, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
}

export class UplinkServer {
  private readonly h2 = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
  private readonly sessions = new Map<ServerHttp2Session, string>();
  private closing = false;

  constructor(private readonly opts: UplinkServerOptions) {
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      stream.on('error', () => undefined);
      const agent = this.sessions.get(stream.session as ServerHttp2Session);
      if (agent === undefined) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      opts.onStream(agent, stream, headers);
    });
  }

  /** Takes over a TLS socket that negotiated warren-up/1. */
  accept(socket: TLSSocket): void {
    const source = formatSource(socket);
    socket.on('error', () => undefined);
    admitAgent(socket, this.opts.lookup).then(
      ({ name: agent }) => {
        if (this.closing || socket.destroyed) return void socket.destroy();
        const s = adoptSocket(this.h2, socket);
        if (!s) return void socket.destroy();
        closeWithSocket(s, socket);
        this.sessions.set(s, agent);
        s.on('error', (err: Error) => this.opts.log.debug({ agent, err: err.message }, 'uplink session error'));
        s.setLocalWindowSize(CONNECTION_WINDOW);
        startKeepalive(s, { intervalMs: this.opts.pingIntervalMs, onDead: () => abortSession(s, new Error('keepalive timeout')) });
        s.once('close', () => this.sessions.delete(s));
        this.opts.log.debug({ agent, source }, 'agent uplink open');
      },
      (err: unknown) => {
        this.opts.log.warn({ source, reason: err instanceof WarrenError ? err.message : 'internal error' }, 'agent uplink refused');
        socket.destroy();
      },
    );
  }

  /** Drops every uplink of an agent (it was removed, or its tunnel is gone for good). */
  dropAgent(agent: string): void {
    // Aborted, not closed: a forward connection cut this way must not look complete to its client.
    for (const [s, name] of this.sessions) if (name === agent) abortSession(s);
  }

  /** GOAWAY to every uplink: streams in flight may finish; sessions left after `graceMs` are destroyed. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    await drainSessions(this.sessions.keys(), graceMs);
  }
}

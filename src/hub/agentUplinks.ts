/**
 * The hub's side of agents' second connection (ALPN warren-up/1): the normal-direction HTTP/2 session
 * an agent opens when it has forward entries, so that a connection accepted on the agent can become a
 * stream *to* the hub. The hub is the HTTP/2 server here. Only an agent certificate that is the one on
 * record for its name is served; every stream is handed on together with that verified agent name, so
 * the consumer can check that the stream really comes from the agent it claims to.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { WarrenError } from '../errors.js';
import { formatSource } from '../hostPort.js';
import { AGENT_OU, normalizeSerial } from '../pki/pki.js';
import { startKeepalive } from '../tunnel/keepalive.js';
import { abortSession } from '../tunnel/relay.js';
import { CONNECTION_WINDOW, H2_SETTINGS, MAX_SESSION_MEMORY_MB } from '../tunnel/protocol.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../log.js';

export interface AgentUplinksOptions {
  readonly store: Pick<Store, 'getAgent'>;
  readonly log: Logger;
  readonly pingIntervalMs: number;
  /** A stream the agent opened; `agent` is the name its verified certificate carries. */
  readonly onStream: (agent: string, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
}

export class AgentUplinks {
  private readonly h2 = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
  private readonly sessions = new Map<ServerHttp2Session, string>();
  private closing = false;

  constructor(private readonly opts: AgentUplinksOptions) {
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
    this.verify(socket).then(
      (agent) => {
        if (this.closing || socket.destroyed) return void socket.destroy();
        let session: ServerHttp2Session | undefined;
        // 'session' is emitted synchronously from the 'connection' handler.
        this.h2.once('session', (s: ServerHttp2Session) => (session = s));
        this.h2.emit('connection', socket);
        if (!session) return void socket.destroy();
        const s = session;
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

  private async verify(socket: TLSSocket): Promise<string> {
    const refused = (why: string) => new WarrenError('WARREN_E_AGENT_REVOKED', why);
    if (!socket.authorized) throw refused('no agent certificate signed by this hub');
    const cert = socket.getPeerCertificate();
    const subject = cert.subject as unknown as Record<string, string | string[]>;
    const name = typeof subject.CN === 'string' ? subject.CN : undefined;
    if (!name || subject.OU !== AGENT_OU) throw refused('not an agent certificate');
    const record = await this.opts.store.getAgent(name);
    if (!record || record.certSerial !== normalizeSerial(cert.serialNumber)) throw refused(`agent "${name}" was removed or its certificate replaced`);
    return name;
  }

  /** Drops every uplink of an agent (it was removed, or its tunnel is gone for good). */
  dropAgent(agent: string): void {
    // Aborted, not closed: a forward connection cut this way must not look complete to its client.
    for (const [s, name] of this.sessions) if (name === agent) abortSession(s);
  }

  /** GOAWAY to every uplink: streams in flight may finish; sessions left after `graceMs` are destroyed. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.sessions.keys()].map(
        (s: Http2Session) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            const timer = setTimeout(() => abortSession(s), graceMs);
            s.once('close', () => (clearTimeout(timer), resolve()));
            s.close();
          }),
      ),
    );
  }
}

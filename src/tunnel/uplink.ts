/**
 * The agent's uplink: a second TLS connection to the hub (ALPN warren-up/1, same client certificate)
 * on which the agent is the HTTP/2 *client*, so connections accepted on forward entries can become
 * streams toward the hub. Dialled on first use, shared by every entry, re-dialled after it drops, and
 * closed (gracefully: open streams finish) when the agent holds no listeners any more.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import { WarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { dialHub, type HubEndpoint } from './dialHub.js';
import { startKeepalive } from './keepalive.js';
import { abortSession } from './relay.js';
import { closeWithSocket } from './sessions.js';
import { CONNECTION_WINDOW, H2_SETTINGS, MAX_SESSION_MEMORY_MB, UP_ALPN } from './protocol.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface UplinkOptions {
  /** Read at each dial: the certificate may have been renewed since the last one. */
  readonly endpoint: () => HubEndpoint;
  readonly pingIntervalMs: number;
  readonly log: Logger;
}

export class Uplink {
  private current: Promise<ClientHttp2Session> | undefined;
  private live: ClientHttp2Session | undefined;
  /** Every session not closed yet, the ones sent GOAWAY included (their streams go on). */
  private readonly open = new Set<ClientHttp2Session>();

  constructor(private readonly opts: UplinkOptions) {}

  /** The sessions still open: the live one and any that are closing with streams in flight. */
  sessions(): ClientHttp2Session[] {
    return [...this.open];
  }

  /** An open session, dialling one if there is none (concurrent callers share one dial). */
  session(): Promise<ClientHttp2Session> {
    // A session that is closing or gone takes no new streams, even before its 'close' event has run.
    if (this.live && (this.live.closed || this.live.destroyed)) this.current = this.live = undefined;
    this.current ??= this.dial().catch((err: unknown) => {
      this.current = undefined;
      throw err;
    });
    return this.current;
  }

  /** GOAWAY: no new streams; streams in flight finish. */
  close(): void {
    const c = this.current;
    this.current = this.live = undefined;
    void c?.then((s) => s.close(), () => undefined);
  }

  private async dial(): Promise<ClientHttp2Session> {
    const ep = this.opts.endpoint();
    const socket = await dialHub(ep, { alpn: [UP_ALPN] });
    if (socket.alpnProtocol !== UP_ALPN) {
      socket.destroy();
      throw new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub ${ep.url.host} does not speak ${UP_ALPN}: upgrade the hub to use agent-side forward entries`);
    }
    // A hub that refuses the uplink (certificate no longer on record) closes right after the TLS
    // handshake, possibly before HTTP/2 takes the socket over; a session on an ended socket would never
    // report anything, so such a socket is refused here and the handshake below has a deadline.
    if (socket.readableEnded || socket.destroyed) {
      socket.destroy();
      throw new WarrenError('WARREN_E_AGENT_REVOKED', `hub ${ep.url.host} refused the uplink`);
    }
    const session = http2.connect(ep.url.origin, { createConnection: () => socket, settings: H2_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
    closeWithSocket(session, socket);
    this.open.add(session);
    session.once('close', () => this.open.delete(session));
    session.on('error', (err: Error) => this.opts.log.debug({ err: err.message }, 'uplink session error'));
    // The keepalive stops by itself when the session closes.
    startKeepalive(session, {
      intervalMs: this.opts.pingIntervalMs,
      onDead: () => {
        this.opts.log.warn('hub missed the uplink keepalive deadline; dropping the uplink');
        abortSession(session);
      },
    });
    const forget = () => {
      if (this.current === mine) this.current = this.live = undefined;
    };
    // dial() passed its first await, so `current` already holds the promise this call fulfils.
    const mine = this.current;
    session.once('close', forget);
    // A session the hub is draining takes no new streams: the next caller dials afresh. Its pings go on
    // until it closes: a hub that never finishes closing it (seen: a stopping hub whose socket stayed
    // open) is then noticed and its streams cut, instead of hanging with them.
    session.once('goaway', forget);
    // The hub's SETTINGS frame is the proof that it serves this uplink.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy();
        reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub ${ep.url.host} did not complete the uplink handshake within ${HANDSHAKE_TIMEOUT_MS} ms`));
      }, HANDSHAKE_TIMEOUT_MS);
      session.once('remoteSettings', () => (clearTimeout(timer), resolve()));
      session.once('close', () => (clearTimeout(timer), reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub ${ep.url.host} closed the uplink during its handshake`))));
    });
    session.setLocalWindowSize(CONNECTION_WINDOW);
    if (this.current === mine) this.live = session;
    // close() was called while dialling: serve the callers already waiting, then let it go.
    if (this.current !== mine) setImmediate(() => session.close());
    this.opts.log.debug({ hub: ep.url.host }, 'uplink open');
    return session;
  }
}

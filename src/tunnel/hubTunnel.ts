/**
 * The hub's end of one agent tunnel (ALPN warren/1): the HTTP/2 client the hub runs over the socket the
 * agent dialled, and the requests the hub makes on it — the info handshake, CONNECT streams, listener
 * sets — and the GOAWAY that tells a refused agent why. Which agents may connect, and the registry of
 * live tunnels, are the hub's business (src/hub/agentTunnels.ts).
 */
import http2, { constants as h2c, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { WarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { encodeGoawayReason } from './goawayReason.js';
import { decodeListenerReport, encodeListenerSet, MAX_LISTENER_BODY } from './listenerSet.js';
import { decodeRefusalHeaders } from './refusalHeaders.js';
import { startKeepalive } from './keepalive.js';
import { abortSession } from './relay.js';
import { closeWithSocket } from './sessions.js';
import type { EarlyData } from './earlyData.js';
import {
  ALPN, CONNECTION_WINDOW, H2_SETTINGS, INFO_PATH, LISTENERS_PATH, MAX_SESSION_MEMORY_MB, SERVICE_HEADER, SOURCE_IP_HEADER,
  type AgentInfo, type ListenerReport, type ListenerSet, type Refusal,
} from './protocol.js';

const agentInfoSchema = z.object({
  name: z.string(),
  version: z.string().max(64),
  hostname: z.string().max(253),
  labels: z.record(z.string(), z.string()),
  routes: z.array(z.string().max(253)).max(1000),
  clusters: z.array(z.string().max(63)).max(100),
  allow: z.array(z.string().max(253)).max(1000),
  sourceIps: z.array(z.string().max(64)).max(1000).optional(),
});

const INFO_TIMEOUT_MS = 10_000;
/** A refused agent that never acknowledges the GOAWAY must not keep its socket. */
const REFUSAL_GRACE_MS = 2000;

export class AgentTunnel {
  readonly connectedAt = new Date();
  rttMs: number | null = null;
  streamsOpen = 0;

  constructor(
    readonly name: string,
    readonly info: AgentInfo,
    readonly session: ClientHttp2Session,
    readonly remoteAddress: string,
  ) {}

  get routes(): readonly string[] {
    return this.info.routes;
  }

  /** Bytes received from the agent over this tunnel since it connected (TLS: streams, framing, pings). */
  get bytesIn(): number {
    return this.session.socket.bytesRead;
  }

  /** Bytes sent to the agent over this tunnel since it connected. */
  get bytesOut(): number {
    return this.session.socket.bytesWritten;
  }

  /**
   * A dead agent is noticed within two intervals (design §1). The agent pings its hub every interval, so
   * the hub listens: it probes only an agent that has been silent for an interval, and every few
   * intervals for `rttMs`.
   */
  keepAlive(intervalMs: number, onDead: () => void): void {
    startKeepalive(this.session, { intervalMs, listen: true, onRtt: (ms) => (this.rttMs = Math.round(ms * 100) / 100), onDead });
  }

  /** False once the tunnel is closing: no new stream can be opened on it. */
  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  /**
   * Opens a CONNECT stream through this agent — to a TCP target (`authority` = HOST:PORT), or to one of
   * the agent's services (`service`, e.g. the Kubernetes API, `authority` = the cluster) — and resolves
   * once the agent has connected it.
   */
  open(authority: string, o: StreamOpenOptions): Promise<ClientHttp2Stream> {
    const headers: Record<string, string> = { ':method': 'CONNECT', ':authority': authority };
    if (o.service) headers[SERVICE_HEADER] = o.service;
    if (o.sourceIp) headers[SOURCE_IP_HEADER] = o.sourceIp;
    return connectStream(this.session, headers, o, { agent: this.name, path: `tunnel to agent "${this.name}"`, count: this });
  }

  /**
   * `PUT /warren/v1/listeners`: sends the whole listener set the agent must hold and returns what the
   * agent reports (bound address or bind error per forward).
   */
  pushListeners(set: ListenerSet, timeoutMs: number): Promise<ListenerReport> {
    const session = this.session;
    return new Promise((resolve, reject) => {
      let req;
      try {
        if (session.closed || session.destroyed) throw new Error('session closed');
        req = session.request({ ':method': 'PUT', ':path': LISTENERS_PATH, 'content-type': 'application/json' });
      } catch (err) {
        return reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent is closing', undefined, { cause: err }));
      }
      const timer = setTimeout(() => {
        req.close(h2c.NGHTTP2_CANCEL);
        reject(new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent did not answer the listener update within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      const chunks: Buffer[] = [];
      let size = 0;
      let refusal: WarrenError | undefined;
      req.on('response', (h) => {
        const status = Number(h[':status']);
        if (status === 200) return;
        // An agent from before forwards answers 404: say so rather than "not found".
        const r = status === 404
          ? { code: 'WARREN_E_AGENT_REFUSED' as const, message: 'this agent does not support forward entries; upgrade it' }
          : decodeRefusalHeaders(h, { code: 'WARREN_E_AGENT_REFUSED', message: `agent answered ${status}` });
        refusal = new WarrenError(r.code, r.message);
      });
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_LISTENER_BODY) req.close(h2c.NGHTTP2_CANCEL);
        else chunks.push(c);
      });
      req.on('end', () => {
        clearTimeout(timer);
        if (refusal) return reject(refusal);
        const report = decodeListenerReport(Buffer.concat(chunks));
        if (report.kind === 'ok') resolve(report.value);
        else reject(new WarrenError('WARREN_E_BAD_REQUEST', 'agent sent a malformed listener report'));
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent failed during the listener update', undefined, { cause: err }));
      });
      req.on('close', () => {
        clearTimeout(timer);
        reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent closed during the listener update'));
      });
      req.end(encodeListenerSet(set));
    });
  }
}

export interface StreamOpenOptions {
  readonly timeoutMs: number;
  /** The client's bytes to send right behind the HEADERS, before the answer (src/tunnel/earlyData.ts). */
  readonly early?: EarlyData;
  readonly signal?: AbortSignal;
  readonly service?: string;
  readonly sourceIp?: string;
}

/**
 * Sends a CONNECT request on `session` (an agent's tunnel, or another hub's relay session) and resolves
 * with the stream once the far end answered 200; a refusal comes back as the WarrenError it carries, a
 * lost session as WARREN_E_TUNNEL_LOST. `path` names the way in errors (`tunnel to agent "a"`). With
 * `o.early`, the client's bytes follow the HEADERS at once; the client is left paused when this settles.
 */
export function connectStream(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  o: StreamOpenOptions,
  via: { readonly agent: string; readonly path: string; readonly count: { streamsOpen: number } },
): Promise<ClientHttp2Stream> {
  const { agent, path, count } = via;
  const authority = headers[':authority'];
  let req: ClientHttp2Stream;
  try {
    if (session.closed || session.destroyed) throw new Error('session closed');
    req = session.request(headers, { endStream: false });
  } catch (err) {
    return Promise.reject(new WarrenError('WARREN_E_TUNNEL_LOST', `${path} is closing`, { agent }, { cause: err }));
  }
  count.streamsOpen++;
  req.once('close', () => count.streamsOpen--);
  const { timeoutMs, signal } = o;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err?: WarrenError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      o.early?.stop(err === undefined);
      if (err) {
        req.close(h2c.NGHTTP2_CANCEL);
        reject(err);
      } else resolve(req);
    };
    const onAbort = () => settle(new WarrenError('WARREN_E_TUNNEL_LOST', 'the client went away while the stream was opening'));
    const timer = setTimeout(
      () => settle(new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent "${agent}" did not connect to ${authority} within ${timeoutMs} ms`, { agent })),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('response', (h) => {
      if (h[':status'] === 200) return settle();
      const refusal = decodeRefusalHeaders(h, { code: 'WARREN_E_TUNNEL_LOST', message: `agent "${agent}" refused the stream` });
      settle(new WarrenError(refusal.code, refusal.message, { agent }));
    });
    req.once('error', (err) => settle(new WarrenError('WARREN_E_TUNNEL_LOST', `${path} failed while opening the stream`, { agent }, { cause: err })));
    // Every stream closes, most of them long after they opened: build the error only when it is one
    // (an Error captures a stack trace; this was a measurable part of the per-connection cost).
    req.once('close', () => settled || settle(new WarrenError('WARREN_E_TUNNEL_LOST', `${path} closed while opening the stream`, { agent })));
    o.early?.sendTo(req);
  });
}

/** Runs the hub's HTTP/2 client over a TLS socket that negotiated ALPN warren/1. */
export function openTunnelSession(socket: TLSSocket, log: Logger): ClientHttp2Session {
  const session = http2.connect(`https://agent.${ALPN}`, {
    createConnection: () => socket,
    settings: H2_SETTINGS,
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
  });
  session.on('error', (err: Error) => log.debug({ err: err.message }, 'agent session error'));
  // A killed agent's tunnel would otherwise stay "connected", and take new streams into the void.
  closeWithSocket(session, socket);
  session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
  return session;
}

/** The agent's own account of itself (`GET /warren/v1/info`), the first request on every tunnel. */
export async function fetchInfo(session: ClientHttp2Session): Promise<AgentInfo> {
  const req = session.request({ ':method': 'GET', ':path': INFO_PATH });
  req.setTimeout(INFO_TIMEOUT_MS, () => req.close(h2c.NGHTTP2_CANCEL));
  const chunks: Buffer[] = [];
  let size = 0;
  const body = await new Promise<string>((resolve, reject) => {
    req.on('response', (h) => {
      if (h[':status'] !== 200) reject(new WarrenError('WARREN_E_BAD_REQUEST', `agent answered ${h[':status']} to the info request`));
    });
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) req.close(h2c.NGHTTP2_CANCEL);
      else chunks.push(c);
    });
    let ended = false;
    req.on('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'agent tunnel closed during the handshake', undefined, { cause: err })));
    // Built only when the request did not end: an Error captures a stack trace, ~65 µs of every agent's
    // admission on a busy hub (a profile at 5,000 agents connecting).
    req.on('close', () => ended || reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'agent did not complete the handshake')));
    req.end();
  });
  const parsed = agentInfoSchema.safeParse(JSON.parse(body));
  if (!parsed.success) throw new WarrenError('WARREN_E_BAD_REQUEST', 'agent sent malformed info');
  return parsed.data;
}

/** Tells the agent why it is refused (GOAWAY opaque data) and closes the tunnel. */
export function refuseTunnel(session: ClientHttp2Session, refusal: Refusal): void {
  const send = () => {
    if (session.destroyed) return;
    session.goaway(h2c.NGHTTP2_REFUSED_STREAM, 0, encodeGoawayReason(refusal));
    session.close();
    setTimeout(() => abortSession(session), REFUSAL_GRACE_MS).unref();
  };
  if (session.connecting) session.once('connect', send);
  else send();
}

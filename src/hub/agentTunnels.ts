/**
 * The hub's side of every agent tunnel: accepts an agent's TLS socket (ALPN warren/1), checks that its
 * certificate is the one on record for its name, runs the HTTP/2 client over it, keeps it alive with
 * PINGs, and opens CONNECT streams through it. Also the router's live view of agents.
 */
import http2, { constants as h2c, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { WarrenError, isErrorCode } from '../errors.js';
import { formatSource } from '../hostPort.js';
import { AGENT_OU, normalizeSerial } from '../pki/pki.js';
import { startKeepalive } from '../tunnel/keepalive.js';
import { abortSession } from '../tunnel/relay.js';
import { ALPN, CONNECTION_WINDOW, ERROR_HEADER, H2_SETTINGS, INFO_PATH, MAX_SESSION_MEMORY_MB, MESSAGE_HEADER, SERVICE_HEADER, type AgentInfo, type Refusal } from '../tunnel/protocol.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../log.js';
import type { RouterView, RoutableAgent } from './router.js';
import { claimRefusal } from './authority.js';

const agentInfoSchema = z.object({
  name: z.string(),
  version: z.string().max(64),
  hostname: z.string().max(253),
  labels: z.record(z.string(), z.string()),
  routes: z.array(z.string().max(253)).max(1000),
  clusters: z.array(z.string().max(63)).max(100),
  allow: z.array(z.string().max(253)).max(1000),
});

const INFO_TIMEOUT_MS = 10_000;

export class AgentTunnel implements RoutableAgent {
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

  /**
   * Opens a CONNECT stream through this agent — to a TCP target (`authority` = HOST:PORT), or to one of
   * the agent's services (`service`, e.g. the Kubernetes API, `authority` = the cluster) — and resolves
   * once the agent has connected it.
   */
  open(authority: string, o: { readonly timeoutMs: number; readonly signal?: AbortSignal; readonly service?: string }): Promise<ClientHttp2Stream> {
    let req: ClientHttp2Stream;
    try {
      if (this.session.closed || this.session.destroyed) throw new Error('session closed');
      const headers = o.service ? { ':method': 'CONNECT', ':authority': authority, [SERVICE_HEADER]: o.service } : { ':method': 'CONNECT', ':authority': authority };
      req = this.session.request(headers, { endStream: false });
    } catch (err) {
      return Promise.reject(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${this.name}" is closing`, { agent: this.name }, { cause: err }));
    }
    this.streamsOpen++;
    req.once('close', () => this.streamsOpen--);
    const { timeoutMs, signal } = o;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: WarrenError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          req.close(h2c.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(req);
      };
      const onAbort = () => settle(new WarrenError('WARREN_E_TUNNEL_LOST', 'the client went away while the stream was opening'));
      const timer = setTimeout(
        () => settle(new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent "${this.name}" did not connect to ${authority} within ${timeoutMs} ms`, { agent: this.name })),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('response', (headers) => {
        if (headers[':status'] === 200) return settle();
        const code = String(headers[ERROR_HEADER] ?? '');
        const message = String(headers[MESSAGE_HEADER] ?? `agent "${this.name}" refused the stream`);
        settle(new WarrenError(isErrorCode(code) ? code : 'WARREN_E_TUNNEL_LOST', message, { agent: this.name }));
      });
      req.once('error', (err) => settle(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${this.name}" failed while opening the stream`, { agent: this.name }, { cause: err })));
      // Every stream closes, most of them long after they opened: build the error only when it is one
      // (an Error captures a stack trace; this was a measurable part of the per-connection cost).
      req.once('close', () => settled || settle(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${this.name}" closed while opening the stream`, { agent: this.name })));
    });
  }
}

export interface AgentTunnelsOptions {
  readonly store: Store;
  readonly log: Logger;
  readonly pingIntervalMs: number;
  readonly onEvent?: (e: { kind: 'connected' | 'disconnected' | 'refused'; agent: string; reason: string; source: string }) => void;
}

export class AgentTunnels extends EventEmitter implements RouterView {
  private readonly tunnels = new Map<string, AgentTunnel>();
  private readonly known = new Set<string>();
  private draining = false;

  constructor(private readonly opts: AgentTunnelsOptions) {
    super();
  }

  async load(): Promise<void> {
    for (const a of await this.opts.store.listAgents()) this.known.add(a.name);
  }

  markKnown(name: string): void {
    this.known.add(name);
  }

  isKnown(name: string): boolean {
    return this.known.has(name);
  }

  connected(): Iterable<AgentTunnel> {
    return this.tunnels.values();
  }

  get(name: string): AgentTunnel | undefined {
    return this.tunnels.get(name);
  }

  get size(): number {
    return this.tunnels.size;
  }

  /** Forgets an agent (after `agents rm`) and drops its tunnel at once. */
  forget(name: string): void {
    this.known.delete(name);
    const t = this.tunnels.get(name);
    if (!t) return;
    refuse(t.session, { code: 'WARREN_E_AGENT_REVOKED', message: `agent "${name}" was removed from the hub; join again with a new token` });
    // Revocation cuts the tunnel now, in-flight streams included (refuse() alone lets them finish and
    // waits for the agent to hang up). The GOAWAY above is still flushed before the socket closes.
    abortSession(t.session);
  }

  /** Takes over a TLS socket that negotiated ALPN warren/1. */
  accept(socket: TLSSocket): void {
    const source = formatSource(socket);
    const log = this.opts.log.child({ source });
    const session = http2.connect(`https://agent.${ALPN}`, {
      createConnection: () => socket,
      settings: H2_SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    session.on('error', (err: Error) => log.debug({ err: err.message }, 'agent session error'));
    // The TLS server keeps half-open sockets (CONNECT streams need them), so an agent's EOF alone does
    // not close the session: a killed agent's tunnel would stay "connected", and take new streams into
    // the void, until the keepalive deadline. A tunnel never half-closes on purpose; EOF means gone.
    socket.once('end', () => abortSession(session));
    session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
    this.admit(socket, session, source).then(
      (tunnel) => tunnel && log.info({ agent: tunnel.name, version: tunnel.info.version }, 'agent connected'),
      (err: unknown) => {
        const refusal = err instanceof WarrenError ? { code: err.code, message: err.message } : { code: 'WARREN_E_INTERNAL', message: 'internal error' };
        log.warn({ code: refusal.code, reason: refusal.message, agent: peerName(socket) }, 'agent refused');
        this.opts.onEvent?.({ kind: 'refused', agent: peerName(socket) ?? '?', reason: refusal.message, source });
        refuse(session, refusal);
      },
    );
  }

  private async admit(socket: TLSSocket, session: ClientHttp2Session, source: string): Promise<AgentTunnel | undefined> {
    if (this.draining) throw new WarrenError('WARREN_E_UNAVAILABLE', 'hub is shutting down');
    if (!socket.authorized) throw new WarrenError('WARREN_E_AGENT_REVOKED', 'agent certificate is missing or not signed by this hub; join with a token');
    // getPeerCertificate() builds a fresh object from the DER every call (~0.1 ms): once per agent is enough.
    const cert = socket.getPeerCertificate();
    const subject = cert.subject as unknown as Record<string, string | string[]>;
    const name = typeof subject.CN === 'string' ? subject.CN : undefined;
    if (!name || subject.OU !== AGENT_OU) throw new WarrenError('WARREN_E_AGENT_REVOKED', 'certificate is not an agent certificate');
    const record = await this.opts.store.getAgent(name);
    const serial = normalizeSerial(cert.serialNumber);
    if (!record || record.certSerial !== serial) {
      throw new WarrenError('WARREN_E_AGENT_REVOKED', `agent "${name}" was removed or its certificate replaced; join again with a new token`);
    }
    const info = await fetchInfo(session);
    if (info.name !== name) throw new WarrenError('WARREN_E_AGENT_REVOKED', `agent certificate is for "${name}" but the agent calls itself "${info.name}"`);
    // Checked on every admission, not only at the join: the agent chooses its clusters and routes at
    // each start, and they steer other users' traffic to it.
    const refusal = claimRefusal(name, record.authority, info);
    if (refusal) throw refusal;

    const tunnel = new AgentTunnel(name, info, session, source);
    const previous = this.tunnels.get(name);
    this.tunnels.set(name, tunnel);
    this.known.add(name);
    if (previous) abortSession(previous.session);

    startKeepalive(session, {
      intervalMs: this.opts.pingIntervalMs,
      onRtt: (ms) => (tunnel.rttMs = Math.round(ms * 100) / 100),
      onDead: () => {
        this.opts.log.warn({ agent: name }, 'agent missed its keepalive deadline; closing tunnel');
        abortSession(session, new Error('keepalive timeout'));
      },
    });
    session.once('close', () => {
      if (this.tunnels.get(name) === tunnel) this.tunnels.delete(name);
      this.opts.store.updateAgentSeen(name, metaOf(info), Date.now()).catch(() => undefined);
      this.opts.onEvent?.({ kind: 'disconnected', agent: name, reason: 'tunnel closed', source });
      this.emit('disconnected', name);
    });
    await this.opts.store.updateAgentSeen(name, metaOf(info), Date.now());
    this.opts.onEvent?.({ kind: 'connected', agent: name, reason: 'tunnel open', source });
    this.emit('connected', name);
    return tunnel;
  }

  /** Graceful drain: tell every agent we are going (GOAWAY), let open streams finish, then close. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    const sessions = [...this.tunnels.values()].map((t) => t.session);
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            const timer = setTimeout(() => abortSession(s), timeoutMs);
            s.once('close', () => (clearTimeout(timer), resolve()));
            s.close();
          }),
      ),
    );
  }
}

function peerName(socket: TLSSocket): string | undefined {
  // null once the socket is destroyed, whatever the type says.
  const cn = ((socket.getPeerCertificate() as PeerCertificate | null)?.subject as unknown as Record<string, string | string[]> | undefined)?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

function metaOf(info: AgentInfo) {
  return { version: info.version, routes: info.routes, clusters: info.clusters, allow: info.allow, hostname: info.hostname };
}

/** Tells the agent why it is refused (GOAWAY opaque data, JSON) and closes the tunnel. */
function refuse(session: ClientHttp2Session, refusal: Refusal): void {
  const send = () => {
    if (session.destroyed) return;
    session.goaway(h2c.NGHTTP2_REFUSED_STREAM, 0, Buffer.from(JSON.stringify(refusal)));
    session.close();
    // a peer that never acknowledges must not keep the socket: destroy after a grace period
    setTimeout(() => abortSession(session), 2000).unref();
  };
  if (session.connecting) session.once('connect', send);
  else send();
}

async function fetchInfo(session: ClientHttp2Session): Promise<AgentInfo> {
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
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', (err) => reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'agent tunnel closed during the handshake', undefined, { cause: err })));
    req.on('close', () => reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'agent did not complete the handshake')));
    req.end();
  });
  const parsed = agentInfoSchema.safeParse(JSON.parse(body));
  if (!parsed.success) throw new WarrenError('WARREN_E_BAD_REQUEST', 'agent sent malformed info');
  return parsed.data;
}

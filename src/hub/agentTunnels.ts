/**
 * The hub's registry of agent tunnels: admits an agent's TLS socket (ALPN warren/1) when its certificate
 * is the one on record for its name and its claims are within its authority, keeps the live tunnel per
 * name, and is the router's view of agents. The tunnel itself is src/tunnel/hubTunnel.ts.
 */
import type { ClientHttp2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { EventEmitter } from 'node:events';
import { WarrenError } from '../shared/errors.js';
import { formatSource } from '../shared/hostPort.js';
import { abortSession } from '../tunnel/relay.js';
import { drainSessions } from '../tunnel/sessions.js';
import { AgentTunnel, fetchInfo, openTunnelSession, refuseTunnel } from '../tunnel/hubTunnel.js';
import { admitAgent, claimedName } from '../tunnel/peerCertificate.js';
import type { AgentInfo } from '../tunnel/protocol.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../shared/log.js';
import { AgentIndex, type RouteMatch, type RouterView } from './router.js';
import { claimRefusal } from './authority.js';

export interface AgentTunnelsOptions {
  readonly store: Store;
  readonly log: Logger;
  readonly pingIntervalMs: number;
  readonly onEvent?: (e: { kind: 'connected' | 'disconnected' | 'refused'; agent: string; reason: string; source: string }) => void;
}

export class AgentTunnels extends EventEmitter implements RouterView {
  private readonly tunnels = new AgentIndex<AgentTunnel>((t) => t.info.clusters);
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

  byRoute(host: string): RouteMatch<AgentTunnel> | undefined {
    return this.tunnels.lookup(host);
  }

  serving(cluster: string): AgentTunnel[] {
    return this.tunnels.serving(cluster);
  }

  get size(): number {
    return this.tunnels.size;
  }

  /** The agents connected now. */
  names(): string[] {
    return [...this.tunnels.keys()];
  }

  /** Forgets an agent (after `agents rm`) and drops its tunnel at once. */
  forget(name: string): void {
    this.known.delete(name);
    const t = this.tunnels.get(name);
    if (!t) return;
    refuseTunnel(t.session, { code: 'WARREN_E_AGENT_REVOKED', message: `agent "${name}" was removed from the hub; join again with a new token` });
    // Revocation cuts the tunnel now, in-flight streams included (refuse() alone lets them finish and
    // waits for the agent to hang up). The GOAWAY above is still flushed before the socket closes.
    abortSession(t.session);
  }

  /** Takes over a TLS socket that negotiated ALPN warren/1. */
  accept(socket: TLSSocket): void {
    const source = formatSource(socket);
    const log = this.opts.log.child({ source });
    const session = openTunnelSession(socket, log);
    this.admit(socket, session, source).then(
      (tunnel) => tunnel && log.info({ agent: tunnel.name, version: tunnel.info.version }, 'agent connected'),
      (err: unknown) => {
        const refusal = err instanceof WarrenError ? { code: err.code, message: err.message } : { code: 'WARREN_E_INTERNAL', message: 'internal error' };
        const agent = claimedName(socket);
        log.warn({ code: refusal.code, reason: refusal.message, agent }, 'agent refused');
        this.opts.onEvent?.({ kind: 'refused', agent: agent ?? '?', reason: refusal.message, source });
        refuseTunnel(session, refusal);
      },
    );
  }

  private async admit(socket: TLSSocket, session: ClientHttp2Session, source: string): Promise<AgentTunnel | undefined> {
    if (this.draining) throw new WarrenError('WARREN_E_UNAVAILABLE', 'hub is shutting down');
    const { name, record } = await admitAgent(socket, (n) => this.opts.store.getAgent(n));
    const info = await fetchInfo(session);
    if (info.name !== name) throw new WarrenError('WARREN_E_AGENT_REVOKED', `agent certificate is for "${name}" but the agent calls itself "${info.name}"`);
    // Checked on every admission, not only at the join: the agent chooses its clusters and routes at
    // each start, and they steer other users' traffic to it.
    const refusal = claimRefusal(name, record.authority, info);
    if (refusal) throw refusal;

    const tunnel = new AgentTunnel(name, info, session, source);
    const previous = this.tunnels.get(name);
    this.tunnels.set(tunnel);
    this.known.add(name);
    if (previous) abortSession(previous.session);

    tunnel.keepAlive(this.opts.pingIntervalMs, () => {
      this.opts.log.warn({ agent: name }, 'agent missed its keepalive deadline; closing tunnel');
      abortSession(session, new Error('keepalive timeout'));
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
    await drainSessions([...this.tunnels.values()].map((t) => t.session), timeoutMs);
  }
}

function metaOf(info: AgentInfo) {
  return { version: info.version, routes: info.routes, clusters: info.clusters, allow: info.allow, hostname: info.hostname, sourceIps: info.sourceIps ?? [] };
}

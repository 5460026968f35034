/**
 * Several hubs on one store: which hubs are alive (leases), which hub each agent's tunnel is on
 * (presence), and streams to an agent on another hub (relay). With one hub (SQLite) the same code runs
 * and simply never finds another hub.
 *
 *   membership  every hub renews its row in `hubs` every lease/3; a row whose lease ran out (by the
 *               store's clock) is removed by the first hub that notices, with its agents' presence, so a
 *               dead hub leaves the set within lease + lease/3 (< 2 leases). A hub that stops cleanly
 *               removes itself at once.
 *   presence    a hub records its agents in `presence` when their tunnel opens and closes, and tells the
 *               others (change feed, LISTEN/NOTIFY); every hub keeps the map agent → hub in memory, so
 *               opening a stream asks the store nothing. After a lost notification connection every hub
 *               reloads the map.
 *   relay       a stream to an agent on hub B, asked for on hub A, is admitted, audited and counted on A
 *               (src/hub/opener.ts) and carried over one HTTP/2 session from A to B (ALPN warren-hub/1,
 *               mTLS with a hub-peer certificate from the shared CA); B hands it to the agent's tunnel.
 *   forwards    the oldest live hub (by start, then id) holds the hub-side forward entries; a hub holds
 *               them only while its own lease is surely valid, so two hubs never listen at once.
 */
import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import os from 'node:os';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { HubRecord, Store } from '../store/store.js';
import { AGENT_HEADER, CONNECTION_WINDOW, H2_SETTINGS, HUB_ALPN, MAX_SESSION_MEMORY_MB, SERVICE_HEADER, SOURCE_IP_HEADER } from '../tunnel/protocol.js';
import { connectStream, type AgentTunnel, type StreamOpenOptions } from '../tunnel/hubTunnel.js';
import { EarlyData } from '../tunnel/earlyData.js';
import { startKeepalive } from '../tunnel/keepalive.js';
import { verifiedHubPeer } from '../tunnel/peerCertificate.js';
import { refuseStream } from '../tunnel/refusalHeaders.js';
import { abortSession, abortStream, relay } from '../tunnel/relay.js';
import { adoptSocket, drainSessions } from '../tunnel/sessions.js';
import type { AgentTunnels } from './agentTunnels.js';
import type { Change } from './changeFeed.js';
import { AgentIndex, type RouteMatch, type RouterView } from './router.js';

/** An agent whose tunnel was lost less than this ago is taken to be reconnecting. */
const RECONNECTING_MS = 30_000;

/** What the opener dials: an agent's own tunnel on this hub, or the way to it through another hub. */
export interface AgentLink {
  readonly name: string;
  readonly routes: readonly string[];
  readonly info: { readonly clusters: readonly string[]; readonly sourceIps?: readonly string[] | undefined };
  readonly streamsOpen: number;
  /** False once no new stream can be opened this way. */
  readonly usable: boolean;
  open(authority: string, o: StreamOpenOptions): Promise<ClientHttp2Stream>;
}

/** The agents this hub can reach: its own tunnels first, then agents on other live hubs. */
export interface AgentDirectory extends RouterView {
  get(name: string): AgentLink | undefined;
  connected(): Iterable<AgentLink>;
  byRoute(host: string): RouteMatch<AgentLink> | undefined;
  /** The connected agents serving a Kubernetes cluster. */
  serving(cluster: string): AgentLink[];
  /** True when `name`'s tunnel was lost recently, here or on another hub (it is likely reconnecting). */
  reconnecting(name: string): boolean;
  /**
   * Waits up to `ms` for `name` to be reachable another way than `stale` (its agent reconnecting to
   * some hub after its tunnel or hub went away); undefined when it is not by then.
   */
  moved(name: string, stale: AgentLink | undefined, ms: number, signal?: AbortSignal): Promise<AgentLink | undefined>;
}

/** A new hub id, one per process: a restarted hub is a new member (its old row expires or was removed). */
export function newHubId(): string {
  return `${os.hostname().replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
}

export interface HubMeshDeps {
  readonly id: string;
  readonly store: Store;
  readonly tunnels: AgentTunnels;
  readonly log: Logger;
  /** A hub whose lease is not renewed for this long is dead. */
  readonly leaseMs: number;
  /** Where other hubs reach this one (https://HOST:PORT). */
  readonly relayUrl: () => string;
  /** This hub's hub-peer certificate and the shared CA. */
  readonly peerTls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
  readonly dialTimeoutMs: number;
  readonly pingIntervalMs: number;
  /** Tells the other hubs (change feed). */
  readonly publish: (change: Change) => Promise<void>;
}

/** An agent on another hub, reached through that hub's relay. */
class RemoteAgent implements AgentLink {
  streamsOpen = 0;

  constructor(
    readonly name: string,
    readonly info: { readonly clusters: readonly string[]; readonly routes: readonly string[]; readonly sourceIps?: readonly string[] | undefined },
    readonly hub: HubRecord,
    private readonly mesh: HubMesh,
  ) {}

  get routes(): readonly string[] {
    return this.info.routes;
  }

  get usable(): boolean {
    return this.mesh.isAlive(this.hub.id);
  }

  open(authority: string, o: StreamOpenOptions): Promise<ClientHttp2Stream> {
    const headers: Record<string, string> = { ':method': 'CONNECT', ':authority': authority, [AGENT_HEADER]: this.name };
    if (o.service) headers[SERVICE_HEADER] = o.service;
    if (o.sourceIp) headers[SOURCE_IP_HEADER] = o.sourceIp;
    const path = `relay to agent "${this.name}" through hub ${this.hub.id}`;
    return connectStream(this.mesh.peer(this.hub), headers, o, { agent: this.name, path, count: this }).catch((err: unknown) => {
      // The agent left that hub (or the hub is going): the same as a lost tunnel, worth waiting for.
      const e = asWarrenError(err);
      throw e.code === 'WARREN_E_AGENT_OFFLINE' ? new WarrenError('WARREN_E_TUNNEL_LOST', `${path}: ${e.message}`, { agent: this.name }) : e;
    });
  }
}

export class HubMesh extends EventEmitter implements AgentDirectory {
  readonly id: string;
  readonly startedAt = Date.now();
  /** Live hubs (this one included) by id. */
  private hubs = new Map<string, HubRecord>();
  /** Agents whose tunnel is on another live hub. */
  private readonly remote = new AgentIndex<RemoteAgent>((r) => r.info.clusters);
  /** When agents' tunnels were last lost (here or on another hub), to wait for them briefly. */
  private readonly lost = new Map<string, number>();
  /** Client sessions to other hubs' relays. */
  private readonly peers = new Map<string, ClientHttp2Session>();
  /** Sessions other hubs opened to this one. */
  private readonly served = new Set<ServerHttp2Session>();
  private readonly h2 = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
  /** performance.now() until which this hub's lease is surely valid (measured from before the renewal was sent). */
  private leaseValidUntil = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private leader = false;
  private closing = false;

  constructor(private readonly deps: HubMeshDeps) {
    super();
    this.id = deps.id;
    this.setMaxListeners(0);
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.serve(stream, headers));
  }

  async start(): Promise<void> {
    const { tunnels } = this.deps;
    tunnels.on('connected', (name: string) => void this.announce(name));
    tunnels.on('disconnected', (name: string) => {
      if (tunnels.get(name)) return;
      this.markLost(name);
      void this.announce(name);
    });
    await this.renew();
    await this.replacePredecessors();
    await this.refreshHubs();
    await this.reloadPresence();
    await this.deps.publish({ kind: 'hubs' });
    this.heartbeat = setInterval(() => void this.beat(), Math.max(100, Math.floor(this.deps.leaseMs / 3)));
    this.heartbeat.unref();
  }

  /** Live hubs, oldest first, for `warren hubs ls`. */
  list(): Array<HubRecord & { self: boolean; leader: boolean; agents: number }> {
    const hubs = [...this.hubs.values()].sort(byAge);
    const count = new Map<string, number>();
    for (const r of this.remote.values()) count.set(r.hub.id, (count.get(r.hub.id) ?? 0) + 1);
    const holder = this.hubEntriesHolder();
    return hubs.map((h) => ({
      ...h, self: h.id === this.id, leader: h.id === holder, agents: h.id === this.id ? this.deps.tunnels.size : (count.get(h.id) ?? 0),
    }));
  }

  /**
   * The hub that holds the hub-side forward entries now, as this hub knows it: this one while it holds
   * them, else the oldest live hub; null while this hub is the oldest but its lease is not surely valid
   * (then nobody listens).
   */
  hubEntriesHolder(): string | null {
    if (this.leader) return this.id;
    const oldest = this.oldestAlive();
    return oldest && oldest.id !== this.id ? oldest.id : null;
  }

  /** The hub an agent's tunnel is on (this one's id for a local tunnel), or null. */
  hubOf(name: string): string | null {
    if (this.deps.tunnels.get(name)) return this.id;
    return this.remote.get(name)?.hub.id ?? null;
  }

  /** True while this hub holds the hub-side forward entries. */
  get isLeader(): boolean {
    return this.leader;
  }

  isAlive(id: string): boolean {
    return this.hubs.has(id) && !this.closing;
  }

  get(name: string): AgentLink | undefined {
    return this.deps.tunnels.get(name) ?? this.remote.get(name);
  }

  *connected(): Iterable<AgentLink> {
    yield* this.deps.tunnels.connected();
    for (const r of this.remote.values()) if (!this.servedHere(r)) yield r;
  }

  isKnown(name: string): boolean {
    return this.deps.tunnels.isKnown(name) || this.remote.has(name);
  }

  /** The agents serving a Kubernetes cluster: this hub's own, then the other hubs'. */
  serving(cluster: string): AgentLink[] {
    const here = this.deps.tunnels.serving(cluster);
    return [...here, ...this.remote.serving(cluster).filter((r) => !this.servedHere(r))];
  }

  /** An agent on another hub that also has a tunnel here (it is moving): served here. */
  private servedHere(r: RemoteAgent): boolean {
    return this.deps.tunnels.get(r.name) !== undefined;
  }

  /** This hub's own tunnels and the other hubs' agents (an agent with a tunnel here is served here), the longer match winning. */
  byRoute(host: string): RouteMatch<AgentLink> | undefined {
    const here = this.deps.tunnels.byRoute(host);
    const there = this.remote.lookup(host, (r) => this.servedHere(r));
    if (!here || !there) return here ?? there;
    if (here.score !== there.score) return here.score > there.score ? here : there;
    return { ...here, agents: [...here.agents, ...there.agents] };
  }

  reconnecting(name: string): boolean {
    const at = this.lost.get(name);
    if (at !== undefined && performance.now() - at < RECONNECTING_MS) return true;
    // A hub that has just started cannot know which agents were connected a moment ago (to its
    // predecessor on this address, to a hub that is stopping, or elsewhere while it was still reading
    // the presence map): a known agent may be on its way.
    return Date.now() - this.startedAt < RECONNECTING_MS && this.isKnown(name);
  }

  private markLost(name: string): void {
    const now = performance.now();
    // Kept in the order lost (a name lost again moves to the end), so the expired ones are at the front:
    // a hub forgetting a dead hub's thousands of agents does not scan the whole map for each.
    this.lost.delete(name);
    this.lost.set(name, now);
    for (const [n, at] of this.lost) {
      if (now - at < RECONNECTING_MS) break;
      this.lost.delete(n);
    }
  }

  moved(name: string, stale: AgentLink | undefined, ms: number, signal?: AbortSignal): Promise<AgentLink | undefined> {
    const fresh = () => {
      const now = this.get(name);
      return now && now !== stale && now.usable ? now : undefined;
    };
    const found = fresh();
    if (found || ms <= 0 || signal?.aborted) return Promise.resolve(found);
    return new Promise((resolve) => {
      const done = (link: AgentLink | undefined) => {
        clearTimeout(timer);
        this.off('presence', check);
        this.deps.tunnels.off('connected', check);
        signal?.removeEventListener('abort', stop);
        resolve(link);
      };
      const check = () => {
        const link = fresh();
        if (link) done(link);
      };
      // The last look at the deadline: a change may have come without its event (a reload).
      const stop = () => done(fresh());
      const timer = setTimeout(stop, ms);
      this.on('presence', check);
      this.deps.tunnels.on('connected', check);
      signal?.addEventListener('abort', stop, { once: true });
    });
  }

  /** Acts on another hub's change: a hub joined or left, or an agent's tunnel moved. */
  async changed(change: Change): Promise<void> {
    if (change.kind === 'hubs') await this.refreshHubs();
    else if (change.kind === 'presence') await this.refreshAgent(change.agent);
    else if (change.kind === 'resync') {
      await this.refreshHubs();
      await this.reloadPresence();
      // Our own rows may have been removed meanwhile (our lease ran out during an outage).
      for (const name of this.deps.tunnels.names()) await this.deps.store.setPresence(name, this.id, Date.now());
    }
  }

  /** Takes over a TLS socket that negotiated warren-hub/1: only another hub of this CA is served. */
  accept(socket: tls.TLSSocket): void {
    const peer = verifiedHubPeer(socket);
    if (!peer || this.closing) {
      this.deps.log.warn({ peer: peer ?? null }, 'relay connection refused: not a hub-peer certificate from this CA');
      return void socket.destroy();
    }
    const s = adoptSocket(this.h2, socket);
    if (!s) return void socket.destroy();
    this.served.add(s);
    s.on('error', (err: Error) => this.deps.log.debug({ peer, err: err.message }, 'relay session error'));
    s.setLocalWindowSize(CONNECTION_WINDOW);
    startKeepalive(s, { intervalMs: this.deps.pingIntervalMs, onDead: () => abortSession(s, new Error('keepalive timeout')) });
    s.once('close', () => this.served.delete(s));
    this.deps.log.debug({ peer }, 'relay session from another hub');
  }

  /**
   * Stops: the relay sessions other hubs opened may finish their streams (up to `graceMs`), then this
   * hub leaves the set at once (its agents' presence goes with it).
   */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.heartbeat);
    this.setLeader(false);
    await drainSessions(this.served, graceMs);
    this.closing = true;
    for (const s of this.peers.values()) s.close();
    await this.deps.store.removeHub(this.id).catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'could not leave the hub set'));
    await this.deps.publish({ kind: 'hubs' });
  }

  /** The relay session to `hub`, opened on first use and again after it was lost. */
  peer(hub: HubRecord): ClientHttp2Session {
    const open = this.peers.get(hub.id);
    if (open && !open.closed && !open.destroyed) return open;
    const url = new URL(hub.relayUrl);
    const { certPem, keyPem, caPem } = this.deps.peerTls;
    const session = http2.connect(hub.relayUrl, {
      settings: H2_SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      // Streams relayed here carry interactive traffic: no Nagle delay on small writes.
      createConnection: () =>
        tls.connect({
          host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443), ALPNProtocols: [HUB_ALPN], cert: certPem, key: keyPem, ca: [caPem],
          // The chain to the shared CA is what proves a hub (only hubs hold serving certificates it issued);
          // the relay address is often a pod IP that no certificate name covers.
          checkServerIdentity: () => undefined,
        }).setNoDelay(true),
    });
    session.on('error', (err: Error) => this.deps.log.debug({ hub: hub.id, err: err.message }, 'relay session to hub failed'));
    session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
    // A hub that vanished without a FIN (network split) is noticed within two ping intervals; its
    // streams are reset then.
    startKeepalive(session, { intervalMs: this.deps.pingIntervalMs, onDead: () => abortSession(session, new Error('keepalive timeout')) });
    session.once('close', () => {
      if (this.peers.get(hub.id) === session) this.peers.delete(hub.id);
    });
    this.peers.set(hub.id, session);
    return session;
  }

  /** A stream another hub asks for: handed to the agent's tunnel here, bytes carried both ways. */
  private serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const agent = headers[AGENT_HEADER];
    const authority = headers[':authority'];
    if (headers[':method'] !== 'CONNECT' || typeof agent !== 'string' || !authority) {
      return refuseStream(stream, new WarrenError('WARREN_E_BAD_REQUEST', 'a relay request is CONNECT with warren-agent'));
    }
    const tunnel: AgentTunnel | undefined = this.deps.tunnels.get(agent);
    if (!tunnel?.usable) return refuseStream(stream, new WarrenError('WARREN_E_AGENT_OFFLINE', `agent "${agent}" is not connected to hub ${this.id}`, { agent }));
    const gone = new AbortController();
    const onClose = () => gone.abort();
    stream.once('close', onClose);
    const service = headers[SERVICE_HEADER];
    const sourceIp = headers[SOURCE_IP_HEADER];
    tunnel
      .open(authority, {
        timeoutMs: this.deps.dialTimeoutMs, signal: gone.signal, early: new EarlyData(stream),
        ...(typeof service === 'string' ? { service } : {}), ...(typeof sourceIp === 'string' ? { sourceIp } : {}),
      })
      .then(
        (up) => {
          stream.off('close', onClose);
          if (stream.destroyed) return abortStream(up);
          stream.respond({ ':status': 200 });
          void relay(stream, up);
        },
        (err: unknown) => refuseStream(stream, asWarrenError(err)),
      );
  }

  /** One heartbeat: renew the lease, drop hubs whose lease ran out, settle who holds the forwards. */
  private async beat(): Promise<void> {
    try {
      const lapsed = performance.now() >= this.leaseValidUntil;
      await this.renew();
      if (lapsed) {
        // Another hub may have removed this one (and its agents' presence) while its lease had run out.
        for (const name of this.deps.tunnels.names()) await this.deps.store.setPresence(name, this.id, Date.now());
        await this.deps.publish({ kind: 'hubs' });
      }
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'could not renew the hub lease');
    }
    await this.refreshHubs().catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'could not read the hub set'));
  }

  private async renew(): Promise<void> {
    const sent = performance.now();
    await this.deps.store.renewHub({ id: this.id, relayUrl: this.deps.relayUrl(), startedAt: this.startedAt }, this.deps.leaseMs);
    this.leaseValidUntil = sent + this.deps.leaseMs;
  }

  /**
   * A hub row with this hub's own relay address is the process that listened here before (killed, its
   * lease not out yet): two processes cannot listen on one address, so it is gone. Left in the set, it
   * would keep its agents' presence for a lease, and streams to them would be relayed to this very
   * address and refused ("not connected to hub …"). Hence one relay address per hub (`--relay-url`).
   */
  private async replacePredecessors(): Promise<void> {
    const url = this.deps.relayUrl();
    for (const h of await this.deps.store.listHubs()) {
      if (h.id === this.id || h.relayUrl !== url) continue;
      await this.deps.store.removeHub(h.id);
      this.deps.log.info({ hub: h.id, relayUrl: url }, 'removed the hub that listened on this address before, and where its agents were');
    }
  }

  private async refreshHubs(): Promise<void> {
    const rows = await this.deps.store.listHubs();
    let removed = false;
    for (const h of rows) {
      if (h.alive || h.id === this.id) continue;
      await this.deps.store.removeHub(h.id);
      this.deps.log.warn({ hub: h.id }, 'hub lease ran out; removed it and its agents from the hub set');
      removed = true;
    }
    const alive = new Map(rows.filter((h) => h.alive || h.id === this.id).map((h) => [h.id, h]));
    const before = this.hubs;
    this.hubs = alive;
    for (const id of before.keys()) if (!alive.has(id)) this.forgetHub(id);
    if (removed) await this.deps.publish({ kind: 'hubs' });
    this.setLeader(this.oldestAlive()?.id === this.id && performance.now() < this.leaseValidUntil);
  }

  /** The oldest hub whose lease was valid at the last read (by start time, then id). */
  private oldestAlive(): HubRecord | undefined {
    return [...this.hubs.values()].filter((h) => h.alive).sort(byAge)[0];
  }

  private forgetHub(id: string): void {
    this.deps.log.info({ hub: id }, 'hub left the hub set');
    // Its relayed streams are reset (never a clean end), its agents are unreachable until they reconnect.
    const s = this.peers.get(id);
    if (s) abortSession(s);
    // Deleting the entry being visited is safe while iterating a Map: no copy of the whole index.
    for (const r of this.remote.values()) {
      if (r.hub.id !== id) continue;
      this.remote.delete(r.name);
      this.markLost(r.name);
    }
    this.emit('presence');
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.deps.log.info({ hub: this.id, leader }, leader ? 'this hub holds the hub-side forward entries' : 'this hub no longer holds the hub-side forward entries');
    this.emit('leader', leader);
  }

  /** Records where this hub's agent is now (here, or nowhere) and tells the others. */
  private async announce(name: string): Promise<void> {
    try {
      if (this.deps.tunnels.get(name)) await this.deps.store.setPresence(name, this.id, Date.now());
      else await this.deps.store.clearPresence(name, this.id);
      await this.deps.publish({ kind: 'presence', agent: name });
    } catch (err) {
      this.deps.log.warn({ agent: name, err: (err as Error).message }, 'could not record where the agent is connected');
    }
  }

  private async refreshAgent(name: string): Promise<void> {
    const [row] = await this.deps.store.listPresence(name);
    if (row && row.hub !== this.id && !this.hubs.has(row.hub)) await this.refreshHubs();
    const hub = row && row.hub !== this.id ? this.hubs.get(row.hub) : undefined;
    if (!hub) {
      if (this.remote.delete(name)) this.markLost(name);
    } else {
      const meta = (await this.deps.store.getAgent(name))?.meta ?? {};
      this.remote.set(new RemoteAgent(name, { clusters: meta.clusters ?? [], routes: meta.routes ?? [], sourceIps: meta.sourceIps }, hub, this));
    }
    this.emit('presence');
  }

  private async reloadPresence(): Promise<void> {
    const rows = await this.deps.store.listPresence();
    const agents = new Map((await this.deps.store.listAgents()).map((a) => [a.name, a.meta]));
    this.remote.clear();
    for (const row of rows) {
      const hub = this.hubs.get(row.hub);
      if (!hub || row.hub === this.id) continue;
      const meta = agents.get(row.agent) ?? {};
      this.remote.set(new RemoteAgent(row.agent, { clusters: meta.clusters ?? [], routes: meta.routes ?? [], sourceIps: meta.sourceIps }, hub, this));
    }
    this.emit('presence');
  }
}

function byAge(a: HubRecord, b: HubRecord): number {
  return a.startedAt - b.startedAt || a.id.localeCompare(b.id);
}

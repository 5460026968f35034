/**
 * TCP forwards (`warren forwards`, design §4 and §6): named entries that expose one target, like
 * `ssh -R`'s listener or chisel's `R:`. An entry is either
 *
 *   - on the hub: the hub listens on [ADDR:]PORT and carries each accepted connection to the target;
 *   - on an agent: the hub pushes the agent's listener set over its tunnel (PUT /warren/v1/listeners)
 *     when the set changes and when the agent connects; the agent listens and carries each accepted
 *     connection to the hub as a CONNECT stream on its uplink (ALPN warren-up/1), and the hub carries
 *     it on to the target. The hub checks that the stream comes from the forward's own entry agent.
 *
 * Either way the target is resolved by the normal router and dialled through the opener, as the
 * principal `forward:NAME` (no groups) whose scope is exactly the forward's target: the admin who
 * created the forward chose that target, so no grant is needed, and nothing else is reachable with it.
 * Every relayed connection is audited with door `forward`; a source outside `--allow-from` is closed at
 * once and audited as denied.
 *
 * There is no polling: create and delete start and stop listeners directly, and the store row makes
 * a forward come back when the hub restarts. Live counters (open streams, bytes, last error) are kept
 * in memory and start from zero with the process.
 */
import net from 'node:net';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import { canonicalIp, formatHostPort, formatSource, isLabel, parseHostPort } from '../shared/hostPort.js';
import {
  describeBindError, entriesClash, formatEntry, isForwardName, parseAllowFrom, parseEntry, sourceAllowed, type ForwardEntry,
} from '../shared/forwardSpec.js';
import { abortStream } from '../tunnel/relay.js';
import { SOURCE_HEADER, type ListenerReport, type ListenerSet, type ListenerSpec } from '../tunnel/protocol.js';
import { refuseStream } from '../tunnel/refusalHeaders.js';
import { UplinkServer } from '../tunnel/uplinkServer.js';
import type { ForwardKind, ForwardRecord, Store } from '../store/store.js';
import type { Logger } from '../shared/log.js';
import { logFailure, newRequestId } from '../shared/failureLog.js';
import type { Opener, Principal } from '../doors/door.js';
import type { Audit } from './audit.js';
import { sourceIpAllowed } from './authority.js';

/** The command that manages a record of this kind (`warren forwards|egress|ingress`). */
export function commandOf(r: Pick<ForwardRecord, 'kind'>): string {
  return r.kind === 'egress' ? 'egress' : r.kind === 'ingress' ? 'ingress' : 'forwards';
}

/** The slice of the agent registry forwards need: a live tunnel by name, and connect/disconnect events. */
export interface ForwardSessions {
  get(name: string): { readonly info?: { readonly sourceIps?: readonly string[] }; pushListeners(set: ListenerSet, timeoutMs: number): Promise<ListenerReport> } | undefined;
  on(event: 'connected' | 'disconnected', listener: (name: string) => void): unknown;
}

export interface ForwardsDeps {
  readonly store: Pick<Store, 'listForwards' | 'createForward' | 'deleteForward' | 'updateForwardPort' | 'getAgent'>;
  readonly opener: Opener;
  readonly audit: Pick<Audit, 'record'>;
  readonly sessions: ForwardSessions;
  readonly log: Logger;
  readonly pingIntervalMs: number;
  /**
   * Several hubs on one store: whether this hub holds the hub-side entries now (exactly one does,
   * src/hub/hubMesh.ts). Default: always (one hub).
   */
  readonly holdsHubEntries?: () => boolean;
  /**
   * Several hubs: the id of the hub that runs an entry — for a hub entry the hub that holds the hub-side
   * entries, for an agent's entry the hub its tunnel is on (it pushes the agent's listeners) — or null
   * when none does now. Default: none known (no hub id).
   */
  readonly entryHub?: (entryAgent: string | null) => string | null;
  /** Tells the other hubs that the set of forwards changed (they call sync()). */
  readonly changed?: () => void;
  /** How long an agent may take to apply a listener set; default 10 s. */
  readonly pushTimeoutMs?: number;
  /**
   * The hub's own listening addresses and the flag that set each (`--listen`, `--socks-listen`): a hub
   * entry may not take one of them, or the hub could not start next time.
   */
  readonly hubPorts?: () => readonly HubPort[];
}

export interface HubPort {
  readonly host: string;
  readonly port: number;
  readonly flag: string;
}

export interface ForwardInput {
  readonly name: string;
  readonly entry: string;
  readonly target: string;
  readonly allowFrom: readonly string[];
  /** Default 'forward'. 'egress' and 'ingress' need `gateway` and `sourceIp` (design §6). */
  readonly kind?: ForwardKind;
  readonly gateway?: string;
  readonly sourceIp?: string;
}

export interface LastError {
  readonly code: string;
  readonly message: string;
  readonly time: string;
}

/** What `warren forwards ls -o json` prints for each forward. */
export interface ForwardView {
  readonly name: string;
  readonly kind: ForwardKind;
  /** Egress and ingress: the gateway agent. */
  readonly gateway: string | null;
  /** Egress: the address the gateway dials from; ingress: the address its entry listens on. */
  readonly sourceIp: string | null;
  /** `externalservice/NAME` when `warren apply` made it, else null. */
  readonly owner: string | null;
  /** Canonical entry: `hub:0.0.0.0:8080`, `alpha:0.0.0.0:5432`. */
  readonly entry: string;
  /** The entry's agent, or null for a hub entry. */
  readonly agent: string | null;
  readonly target: string;
  readonly allowFrom: readonly string[];
  readonly listening: boolean;
  /** HOST:PORT actually bound (on the hub or the agent), while listening. */
  readonly address: string | null;
  /**
   * The hub that runs the entry (several hubs on one store): a hub entry listens there only, and an
   * agent's entry is pushed from there. `listening`, `address` and the counters are this hub's view:
   * on another hub than this one they say nothing about the entry.
   */
  readonly heldBy: string | null;
  readonly openStreams: number;
  /** Connections carried since the hub started. */
  readonly connections: number;
  /** Bytes from clients toward the target, since the hub started. */
  readonly bytesIn: number;
  /** Bytes from the target toward clients, since the hub started. */
  readonly bytesOut: number;
  readonly lastError: LastError | null;
  readonly createdAt: string;
  readonly createdBy: string;
}

/** The principal a forward's connections run as: no groups, scoped to exactly its target. */
export function forwardPrincipal(name: string, target: string): Principal {
  return { user: `forward:${name}`, groups: [], via: 'forward', scope: { target } };
}

/** A stored forward's entry. */
export function entryOf(r: ForwardRecord): ForwardEntry {
  return r.entryAgent === null
    ? { kind: 'hub', host: r.entryHost, port: r.entryPort }
    : { kind: 'agent', agent: r.entryAgent, host: r.entryHost, port: r.entryPort };
}

class LiveForward {
  server: net.Server | undefined;
  listening = false;
  address: string | null = null;
  openStreams = 0;
  connections = 0;
  bytesIn = 0;
  bytesOut = 0;
  lastError: LastError | null = null;
  deleted = false;
  readonly clients = new Set<Duplex>();
  readonly principal: Principal;

  constructor(public record: ForwardRecord) {
    this.principal = forwardPrincipal(record.name, record.target);
  }

  get name(): string {
    return this.record.name;
  }

  get entry(): ForwardEntry {
    return entryOf(this.record);
  }

  fail(code: string, message: string): void {
    this.lastError = { code, message, time: new Date().toISOString() };
  }
}

/** How the accepted side of a connection is told yes or no: a TCP socket (hub entry) or an uplink stream. */
interface ClientIo {
  accept(): void;
  refuse(err: WarrenError): void;
}

export class Forwards {
  private readonly live = new Map<string, LiveForward>();
  private readonly pushes = new Map<string, Promise<void>>();
  private syncing: Promise<void> = Promise.resolve();
  private readonly uplinks: UplinkServer;
  private closing = false;

  constructor(private readonly deps: ForwardsDeps) {
    this.uplinks = new UplinkServer({
      lookup: (name) => deps.store.getAgent(name),
      log: deps.log,
      pingIntervalMs: deps.pingIntervalMs,
      onStream: (agent, stream, headers) => this.onUplinkStream(agent, stream, headers),
    });
  }

  /** Opens every stored forward: hub entries bind now, agent entries are pushed when their agent connects. */
  async start(): Promise<void> {
    this.deps.sessions.on('connected', (name) => {
      if (this.entriesOn(name).length > 0) void this.syncAgent(name);
    });
    this.deps.sessions.on('disconnected', (name) => {
      if (this.deps.sessions.get(name)) return; // a newer tunnel replaced this one
      // Whatever the reason (revoked, network, hub draining), the agent's uplinks go with its tunnel.
      this.uplinks.dropAgent(name);
      for (const f of this.entriesOn(name)) this.markOffline(f);
    });
    const records = await this.deps.store.listForwards();
    for (const r of records) this.live.set(r.name, new LiveForward(r));
    await Promise.all(
      [...this.live.values()].map((f) => (f.record.entryAgent === null ? this.bindHub(f) : (this.markOffline(f), Promise.resolve()))),
    );
    this.deps.log.info({ forwards: records.length }, 'forwards loaded');
  }

  /**
   * Several hubs: catches up with the store (forwards another hub created or removed) and takes or gives
   * up the hub-side listeners as this hub holds them or not. Connections already carried are left to
   * finish; only the listener moves.
   */
  sync(): Promise<void> {
    // One at a time: two overlapping runs would both bind a listener that is not up yet.
    const run = this.syncing.then(() => this.syncNow());
    this.syncing = run.catch(() => undefined);
    return run;
  }

  private async syncNow(): Promise<void> {
    const records = await this.deps.store.listForwards();
    const names = new Set(records.map((r) => r.name));
    for (const f of [...this.live.values()]) if (!names.has(f.name)) await this.stopLive(f);
    const holds = this.deps.holdsHubEntries?.() ?? true;
    for (const r of records) {
      const f = this.live.get(r.name);
      if (!f) await this.startLive(r);
      else if (r.entryAgent === null && holds && !f.server) {
        f.record = r;
        await this.bindHub(f);
      } else if (r.entryAgent === null && !holds && f.server) {
        f.server.close();
        f.server = undefined;
        f.listening = false;
        f.address = null;
        this.deps.log.info({ forward: f.name }, 'forward entry handed to the hub that holds the hub-side entries');
      }
    }
  }

  /** Takes over a TLS socket that negotiated warren-up/1 (an agent's uplink). */
  acceptUplink(socket: TLSSocket): void {
    this.uplinks.accept(socket);
  }

  list(): ForwardView[] {
    return [...this.live.values()].sort((a, b) => a.name.localeCompare(b.name)).map((f) => this.view(f));
  }

  get(name: string): ForwardView {
    const f = this.live.get(name);
    if (!f) throw new WarrenError('WARREN_E_NOT_FOUND', `no forward "${name}"; list them with \`warren forwards ls\``);
    return this.view(f);
  }

  /**
   * Checks an input and makes the record it would store, without side effects; throws a WarrenError
   * naming the field. `replacing`: names that may be taken because the caller replaces them.
   */
  async prepare(input: ForwardInput, createdBy: string, replacing: ReadonlySet<string> = new Set()): Promise<ForwardRecord> {
    const bad = (field: string, message: string) => new WarrenError('WARREN_E_BAD_REQUEST', `${field}: ${message}`, { field });
    const kind = input.kind ?? 'forward';
    if (!isForwardName(input.name)) throw bad('name', `"${input.name}" is not an RFC 1123 label (lower-case letters, digits, '-', at most 63)`);
    const entry = parseEntry(input.entry);
    if ('error' in entry) throw bad('entry', entry.error);
    const target = parseHostPort(input.target);
    if (!target) throw bad('target', `"${input.target}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:22)`);
    const allowFrom = parseAllowFrom(input.allowFrom);
    if ('error' in allowFrom) throw bad('allowFrom', allowFrom.error);
    const own = this.ownPortTaken(entry);
    if (own) throw bad('entry', `${own}; pick another port`);
    const existing = this.live.get(input.name);
    if (existing && !replacing.has(input.name)) {
      throw new WarrenError('WARREN_E_CONFLICT', `${existing.record.kind ?? 'forward'} "${input.name}" exists; remove it first with \`warren ${commandOf(existing.record)} rm ${input.name}\``);
    }
    for (const other of this.live.values()) {
      if (!replacing.has(other.name) && entriesClash(entry, other.entry)) {
        throw new WarrenError('WARREN_E_CONFLICT', `entry ${formatEntry(entry)} overlaps ${other.record.kind ?? 'forward'} "${other.name}" (${formatEntry(other.entry)})`);
      }
    }
    let gateway: string | null = null;
    let sourceIp: string | null = null;
    if (kind !== 'forward') {
      if (input.gateway === undefined || !isLabel(input.gateway)) throw bad('gateway', `"${input.gateway ?? ''}" is not an agent name`);
      if (input.sourceIp === undefined || net.isIP(input.sourceIp) === 0) throw bad('sourceIp', `"${input.sourceIp ?? ''}" is not an IP address`);
      gateway = input.gateway;
      sourceIp = canonicalIp(input.sourceIp);
      await this.checkGatewayOwns(gateway, sourceIp);
      if (kind === 'ingress') {
        if (entry.kind !== 'agent' || entry.agent !== gateway || entry.host !== sourceIp) throw bad('listen', `an ingress rule listens on its gateway's source address (${gateway}:${sourceIp}:PORT)`);
        if (entry.port === 0) throw bad('listen', 'give the port the external server connects to (1-65535)');
      }
    }
    return {
      name: input.name, entryAgent: entry.kind === 'agent' ? entry.agent : null, entryHost: entry.host, entryPort: entry.port,
      target: formatHostPort(target), allowFrom, createdAt: Date.now(), createdBy, kind, gateway, sourceIp, owner: null,
    };
  }

  /**
   * Validates, stores and starts a forward; resolves once its listener is up. A plain forward whose
   * entry cannot listen is kept and shows why (lastError); an egress or ingress rule is not created
   * then (nothing half-created), and the error says why.
   */
  async create(input: ForwardInput, createdBy: string): Promise<ForwardView> {
    const record = await this.prepare(input, createdBy);
    if (!(await this.deps.store.createForward(record))) throw new WarrenError('WARREN_E_CONFLICT', `forward "${input.name}" exists`);
    const f = await this.startLive(record);
    if (record.kind !== 'forward' && f.lastError?.code === 'WARREN_E_LISTEN_FAILED') {
      const why = f.lastError.message;
      await this.remove(record.name);
      throw new WarrenError('WARREN_E_LISTEN_FAILED', `${record.kind} rule "${record.name}" not created: ${why}`);
    }
    this.deps.changed?.();
    return this.view(f);
  }

  /** Starts a stored record: its listener (hub) or its agent's listener set; lastError says what failed. */
  private async startLive(record: ForwardRecord): Promise<LiveForward> {
    const f = new LiveForward(record);
    this.live.set(record.name, f);
    if (record.entryAgent === null) await this.bindHub(f);
    else {
      if (!(await this.deps.store.getAgent(record.entryAgent))) {
        f.fail('WARREN_E_AGENT_OFFLINE', `no agent "${record.entryAgent}" is registered yet; the entry opens when it joins and connects`);
      }
      await this.syncAgent(record.entryAgent);
    }
    this.deps.log.info({ forward: record.name, kind: record.kind, entry: formatEntry(f.entry), target: record.target, listening: f.listening }, 'forward created');
    return f;
  }

  /**
   * The gateway must be a registered agent whose join token allows `ip` and, when it is or was
   * connected, that runs with `--source-ip` including it (its host owns it).
   */
  private async checkGatewayOwns(gateway: string, ip: string): Promise<void> {
    const record = await this.deps.store.getAgent(gateway);
    if (!record) throw new WarrenError('WARREN_E_NOT_FOUND', `gateway: no agent "${gateway}"; list agents with \`warren agents ls\`, or join the gateway first with a token from \`warren join-token create --source-ips ${ip}\``, { field: 'gateway' });
    const live = this.deps.sessions.get(gateway);
    const owned = live?.info?.sourceIps ?? record.meta.sourceIps ?? [];
    if (!owned.includes(ip)) {
      throw new WarrenError(
        'WARREN_E_BAD_REQUEST',
        `sourceIp: gateway "${gateway}" does not own ${ip} (its --source-ip addresses: ${owned.length ? owned.join(',') : 'none'}); add the address to its host and start it with --source-ip ${[...owned, ip].join(',')}`,
        { field: 'sourceIp' },
      );
    }
    if (!sourceIpAllowed(record.authority, ip)) {
      throw new WarrenError('WARREN_E_BAD_REQUEST', `sourceIp: the join token of gateway "${gateway}" does not allow ${ip}`, { field: 'sourceIp' });
    }
  }

  /** Deletes a forward: its listener closes at once and its open connections are cut. */
  async remove(name: string, o: { kind?: ForwardKind } = {}): Promise<void> {
    const f = this.live.get(name);
    const noun = o.kind && o.kind !== 'forward' ? `${o.kind} rule` : 'forward';
    const notFound = () => new WarrenError('WARREN_E_NOT_FOUND', `no ${noun} "${name}"; list them with \`warren ${commandOf({ kind: o.kind })} ls\``);
    if (f && o.kind && (f.record.kind ?? 'forward') !== o.kind) throw notFound();
    if (f?.record.owner) {
      const svc = f.record.owner.replace(/^externalservice\//, '');
      throw new WarrenError('WARREN_E_CONFLICT', `${noun} "${name}" belongs to ExternalService "${svc}": change its file and \`warren apply\` it again, or \`warren delete externalservice ${svc}\``);
    }
    if (!(await this.deps.store.deleteForward(name)) && !f) throw notFound();
    this.deps.changed?.();
    if (!f) return;
    await this.stopLive(f);
    this.deps.log.info({ forward: name }, 'forward deleted');
  }

  /** Names of the forwards `owner` made (an ExternalService). */
  ownedBy(owner: string): ForwardRecord[] {
    return [...this.live.values()].filter((f) => f.record.owner === owner).map((f) => f.record);
  }

  /**
   * Replaces every forward `owner` owns with `records` (checked with prepare(), each with every owned
   * name as replaceable): stops the old ones, lets `commit` store the change, starts the new ones. When
   * one of the new entries cannot listen, `rollback` restores the store and the old ones start again:
   * all or nothing, and the error names the rule that failed.
   */
  async replaceOwned(owner: string, records: readonly ForwardRecord[], commit: () => Promise<void>, rollback: () => Promise<void>): Promise<ForwardView[]> {
    for (const [i, a] of records.entries()) {
      for (const b of records.slice(i + 1)) {
        if (a.name === b.name) throw new WarrenError('WARREN_E_BAD_REQUEST', `two rules would be named "${a.name}"`);
        if (entriesClash(entryOf(a), entryOf(b))) throw new WarrenError('WARREN_E_CONFLICT', `rules "${a.name}" and "${b.name}" would both listen on ${formatEntry(entryOf(a))}`);
      }
    }
    const old = [...this.live.values()].filter((f) => f.record.owner === owner);
    await Promise.all(old.map((f) => this.stopLive(f)));
    try {
      await commit();
    } catch (err) {
      await Promise.all(old.map((f) => this.startLive(f.record)));
      throw err;
    }
    const started = await Promise.all(records.map((r) => this.startLive({ ...r, owner })));
    const failed = started.find((f) => f.lastError?.code === 'WARREN_E_LISTEN_FAILED');
    if (failed) {
      await Promise.all(started.map((f) => this.stopLive(f)));
      await rollback();
      await Promise.all(old.map((f) => this.startLive(f.record)));
      throw new WarrenError('WARREN_E_LISTEN_FAILED', `nothing applied: ${failed.record.kind ?? 'forward'} rule "${failed.name}": ${failed.lastError!.message}`);
    }
    this.deps.changed?.();
    return started.map((f) => this.view(f));
  }

  /** Forgets the live side of a forward: closes its listener (or tells its agent), cuts its connections. */
  private async stopLive(f: LiveForward): Promise<void> {
    if (this.live.get(f.name) === f) this.live.delete(f.name);
    f.deleted = true;
    f.server?.close();
    f.server = undefined;
    f.listening = false;
    for (const c of f.clients) abortStream(c);
    if (f.record.entryAgent !== null) await this.syncAgent(f.record.entryAgent);
  }

  /**
   * Resets the hub-entry connections still open when the hub stops (after the drain): left to the
   * process's exit they would end with a FIN, which a client takes for a complete stream.
   */
  resetConnections(): void {
    for (const f of this.live.values()) for (const c of f.clients) abortStream(c);
  }

  /** Stops accepting on every hub entry and sends GOAWAY on every uplink (open streams may finish). */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const f of this.live.values()) f.server?.close();
    await this.uplinks.close(graceMs);
  }

  private view(f: LiveForward): ForwardView {
    const r = f.record;
    const heldBy = this.deps.entryHub?.(r.entryAgent) ?? null;
    // An agent's entry whose tunnel is on another hub is that hub's to run and to report (it pushes the
    // listeners): this hub's "not connected" would be wrong. A hub entry here has no error to hide.
    const elsewhere = r.entryAgent !== null && heldBy !== null && !this.deps.sessions.get(r.entryAgent);
    return {
      name: r.name, kind: r.kind ?? 'forward', gateway: r.gateway ?? null, sourceIp: r.sourceIp ?? null, owner: r.owner ?? null,
      entry: formatEntry(f.entry), agent: r.entryAgent, target: r.target, allowFrom: r.allowFrom,
      listening: f.listening, address: f.listening ? f.address : null, heldBy, openStreams: f.openStreams, connections: f.connections,
      bytesIn: f.bytesIn, bytesOut: f.bytesOut, lastError: elsewhere ? null : f.lastError, createdAt: new Date(r.createdAt).toISOString(), createdBy: r.createdBy,
    };
  }

  private entriesOn(agent: string): LiveForward[] {
    return [...this.live.values()].filter((f) => f.record.entryAgent === agent);
  }

  private markOffline(f: LiveForward): void {
    f.listening = false;
    f.address = null;
    f.fail('WARREN_E_AGENT_OFFLINE', `agent "${f.record.entryAgent}" is not connected; the entry opens when it connects`);
  }

  /** A port-0 entry keeps the port it got, so restarts and reconnects bind the same one. */
  private async rememberPort(f: LiveForward, port: number): Promise<void> {
    if (f.record.entryPort !== 0 || port === 0 || f.deleted) return;
    f.record = { ...f.record, entryPort: port };
    await this.deps.store.updateForwardPort(f.name, port);
  }

  /** Why a hub entry would take one of the hub's own listening ports, or undefined when it does not. */
  private ownPortTaken(entry: ForwardEntry): string | undefined {
    if (entry.kind !== 'hub') return undefined;
    const own = (this.deps.hubPorts?.() ?? []).find((p) => entriesClash(entry, { kind: 'hub', host: p.host, port: p.port }));
    return own && `${formatEntry(entry)} is the hub's own ${own.flag} port (${formatHostPort(own)})`;
  }

  private async bindHub(f: LiveForward): Promise<void> {
    // Another hub holds the hub-side entries (several hubs on one store): it listens, not this one.
    if (this.deps.holdsHubEntries && !this.deps.holdsHubEntries()) return;
    const { host, port } = f.record.entryPort === 0 ? { host: f.record.entryHost, port: 0 } : { host: f.record.entryHost, port: f.record.entryPort };
    const where = formatHostPort({ host, port });
    // A forward stored before the hub moved onto its port: the hub starts, this forward shows why it does not listen.
    const own = this.ownPortTaken(f.entry);
    if (own) {
      f.listening = false;
      f.fail('WARREN_E_LISTEN_FAILED', `${own}: not listening; remove it with \`warren forwards rm ${f.name}\` and create it on another port`);
      this.deps.log.warn({ forward: f.name, reason: own }, 'forward entry cannot listen');
      return;
    }
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.onHubSocket(f, socket));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => (server.off('error', reject), resolve()));
      });
    } catch (err) {
      const e = describeBindError(err as NodeJS.ErrnoException, where);
      f.listening = false;
      f.fail(e.code, e.message);
      this.deps.log.warn({ forward: f.name, reason: e.message }, 'forward entry cannot listen');
      return;
    }
    if (f.deleted || this.closing) return void server.close();
    server.on('error', (err) => {
      f.fail('WARREN_E_LISTEN_FAILED', `listener on ${where} failed: ${err.message}`);
      this.deps.log.warn({ forward: f.name, err: err.message }, 'forward listener error');
    });
    const bound = server.address() as net.AddressInfo;
    f.server = server;
    f.listening = true;
    f.address = formatHostPort({ host: bound.address, port: bound.port });
    await this.rememberPort(f, bound.port);
    this.deps.log.info({ forward: f.name, listen: f.address, target: f.record.target }, 'forward listening');
  }

  private onHubSocket(f: LiveForward, socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const ip = socket.remoteAddress ? canonicalIp(socket.remoteAddress) : undefined;
    void this.carry(f, socket, ip, formatSource(socket), { accept: () => undefined, refuse: () => abortStream(socket) });
  }

  /** A CONNECT stream on an agent's uplink: a connection accepted on that agent's entry. */
  private onUplinkStream(agent: string, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    if (headers[':method'] !== 'CONNECT') {
      return refuseStream(stream, new WarrenError('WARREN_E_NOT_FOUND', `hub uplink: nothing at ${String(headers[':method'])} ${String(headers[':path'])}`));
    }
    const authority = (headers[':authority'] ?? '');
    const name = /^([a-z0-9-]{1,63}):\d{1,5}$/.exec(authority)?.[1];
    const f = name === undefined ? undefined : this.live.get(name);
    const src = parseHostPort(String(headers[SOURCE_HEADER] ?? ''));
    const source = `${src ? formatHostPort(src) : 'unknown'} via agent ${agent}`;
    if (!f || f.record.entryAgent !== agent) {
      // Another agent, or a forward that was just deleted: the agent's certificate names it, so it cannot
      // borrow a forward whose entry is elsewhere.
      const e = new WarrenError('WARREN_E_FORBIDDEN', f ? `forward "${f.name}" has no entry on agent "${agent}"` : `no forward "${(name ?? authority).slice(0, 100)}" has an entry on agent "${agent}"`);
      refuseStream(stream, e);
      void this.deps.audit.record({
        kind: 'stream', user: `forward:${name ?? '?'}`, door: 'forward', agent, target: f?.record.target ?? null, result: 'denied',
        reason: `${e.code}: ${e.message}`, source, durationMs: 0,
      });
      return;
    }
    void this.carry(f, stream, src?.host, source, {
      accept: () => stream.respond({ ':status': 200 }),
      refuse: (e) => refuseStream(stream, e),
    });
  }

  /** Checks the source, opens the target through the router as the forward's principal, relays, counts. */
  private async carry(f: LiveForward, client: Duplex, ip: string | undefined, source: string, io: ClientIo): Promise<void> {
    const { audit, opener } = this.deps;
    if (!sourceAllowed(f.record.allowFrom, ip)) {
      const e = new WarrenError('WARREN_E_FORBIDDEN', `forward "${f.name}" refuses ${ip ?? 'an unknown source'}: not in its allow-from list (${f.record.allowFrom.join(',')})`);
      io.refuse(e);
      this.deps.log.info({ forward: f.name, source }, 'forward refused a source outside allow-from');
      await audit.record({
        kind: 'stream', user: f.principal.user, door: 'forward', target: f.record.target, result: 'denied',
        reason: `${e.code}: ${e.message}`, source, durationMs: 0,
      });
      return;
    }
    f.connections++;
    f.openStreams++;
    f.clients.add(client);
    try {
      const { gateway, sourceIp } = f.record;
      const via = f.record.kind === 'egress' && gateway && sourceIp ? { gateway: { agent: gateway, sourceIp } } : {};
      const opened = await opener.open({ target: f.record.target, principal: f.principal, door: 'forward', source, early: client, ...via });
      if (client.destroyed || f.deleted) {
        abortStream(opened.stream);
        if (!client.destroyed) io.refuse(new WarrenError('WARREN_E_NOT_FOUND', `forward "${f.name}" was deleted`));
        return;
      }
      io.accept();
      f.bytesIn += opened.sentEarly ?? 0;
      const done = opened.relay(client);
      // relay() has attached its pipes synchronously; these only count what flows through them.
      client.on('data', (c: Buffer) => void (f.bytesIn += c.length));
      opened.stream.on('data', (c: Buffer) => void (f.bytesOut += c.length));
      await done;
    } catch (err) {
      const e = logFailure(this.deps.log, err, { requestId: newRequestId(), forward: f.name, source });
      f.fail(e.code, e.message);
      io.refuse(e);
    } finally {
      f.openStreams--;
      f.clients.delete(client);
    }
  }

  /** Pushes an agent's whole listener set; pushes to one agent run one after another, each with the set as it is then. */
  private syncAgent(agent: string): Promise<void> {
    const next = (this.pushes.get(agent) ?? Promise.resolve()).then(() => this.pushNow(agent)).catch((err: unknown) => {
      this.deps.log.error({ agent, err: err instanceof Error ? err.message : String(err) }, 'listener push failed');
    });
    this.pushes.set(agent, next);
    void next.then(() => {
      if (this.pushes.get(agent) === next) this.pushes.delete(agent);
    });
    return next;
  }

  private async pushNow(agent: string): Promise<void> {
    const mine = this.entriesOn(agent);
    const tunnel = this.deps.sessions.get(agent);
    if (!tunnel) {
      for (const f of mine) if (f.lastError?.code !== 'WARREN_E_AGENT_OFFLINE') this.markOffline(f);
      return;
    }
    const listeners: ListenerSpec[] = mine.map((f) => ({ forward: f.name, host: f.record.entryHost, port: f.record.entryPort }));
    let report;
    try {
      report = await tunnel.pushListeners({ listeners }, this.deps.pushTimeoutMs ?? 10_000);
    } catch (err) {
      const e = asWarrenError(err);
      for (const f of mine) {
        f.listening = false;
        f.fail(e.code, `listener update on agent "${agent}" failed: ${e.message}`);
      }
      this.deps.log.warn({ agent, code: e.code, reason: e.message }, 'listener push failed');
      return;
    }
    for (const f of mine) {
      if (f.deleted) continue;
      const st = report.listeners.find((l) => l.forward === f.name);
      if (st?.listening) {
        f.listening = true;
        f.address = st.address ?? null;
        if (f.lastError?.code === 'WARREN_E_AGENT_OFFLINE') f.lastError = null;
        const port = st.address ? parseHostPort(st.address)?.port : undefined;
        if (port !== undefined) await this.rememberPort(f, port);
      } else {
        f.listening = false;
        f.address = null;
        f.fail(st?.error?.code ?? 'WARREN_E_LISTEN_FAILED', st?.error?.message ?? `agent "${agent}" did not report forward "${f.name}"`);
      }
    }
    this.deps.log.debug({ agent, listeners: listeners.length }, 'listener set pushed');
  }
}

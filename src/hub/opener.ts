/**
 * The one pipeline behind every door (CONNECT, SOCKS5, unix socket, forwards, the kube router):
 *
 *   admit   who may reach what: the router resolves the target to agents (or a cluster to the agents
 *           serving it), the grants allow it (default deny), the quotas have room; the use is then
 *           watched for revocation until it ends
 *   dial    which agent: least loaded first, the next one when a tunnel turns out to be lost; each
 *           agent's streams shared fairly between principals. An agent's tunnel may be on this hub or
 *           on another hub sharing the store: then the stream goes through that hub's relay
 *           (src/hub/hubMesh.ts), still admitted, counted and audited here, once. An agent whose
 *           tunnel was just lost (its hub stopping, the agent reconnecting) is waited for briefly.
 *   relay   bytes both ways (TCP doors), then one audit row and the metrics
 *
 * The kube door admits each HTTP request (identity travels per request) and sends it over a pooled
 * kube stream, or dials a stream of its own for an upgrade (exec, attach, port-forward); it writes its
 * own audit rows, which describe HTTP requests rather than byte streams.
 */
import type { Duplex } from 'node:stream';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import { formatHostPort, isLabel, parseHostPort } from '../shared/hostPort.js';
import { KUBE_SERVICE } from '../tunnel/protocol.js';
import { abortStream, relay } from '../tunnel/relay.js';
import { EarlyData } from '../tunnel/earlyData.js';
import { streamSocket } from '../tunnel/streamSocket.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../shared/log.js';
import type { Admission, AdmitRequest, Admitter, OpenRequest, Opener, OpenedStream, Principal, RelayResult, ViaGateway } from '../doors/door.js';
import type { AgentDirectory, AgentLink } from './hubMesh.js';
import type { Audit } from './audit.js';
import type { HubMetrics } from './metrics.js';
import { ActiveStreams, type ActiveStream, type Reach } from './activeStreams.js';
import { InFlight } from './inFlight.js';
import { clusterAccess, findTargetGrant } from './policy.js';
import { agentShareError, type Quotas } from './quotas.js';
import { resolveTarget } from './router.js';
import { isKnownCluster } from './kube/clusters.js';
import { KubeStreamPool } from './kube/kubeStreamPool.js';

/** How long a stream waits for an agent whose tunnel was just lost to be back (on any hub). */
const RECONNECT_WAIT_MS = 5_000;

const STOPPING = 'the hub is stopping';

function stoppingError(): WarrenError {
  return new WarrenError('WARREN_E_UNAVAILABLE', `${STOPPING}; retry (through another hub, or this one once it is back)`);
}

export interface HubOpenerDeps {
  /** The agents reachable from this hub: its own tunnels and, through their hubs, the others'. */
  readonly tunnels: AgentDirectory;
  readonly store: Store;
  readonly audit: Audit;
  readonly metrics: HubMetrics;
  readonly log: Logger;
  readonly dialTimeoutMs: number;
  readonly quotas: Quotas;
}

/** What admission decided: the agents that may serve, best first, and how to reach the far end. */
interface Plan {
  readonly agents: readonly AgentLink[];
  /** The CONNECT authority the agent dials (HOST:PORT, or the cluster for the kube service). */
  readonly authority: string;
  readonly service: string | undefined;
  /** The local address the agent dials from (an egress rule's source IP). */
  readonly sourceIp?: string;
  readonly reach: Reach;
  readonly kubeGroups: readonly string[];
}

export class HubOpener implements Opener, Admitter {
  private readonly active = new ActiveStreams();
  private readonly pools = new Map<string, KubeStreamPool>();
  /** Set by stop(): nothing more is admitted. */
  private stopping = false;
  /** Uses being admitted or dialled: stop() ends their waits (for an agent to come back, for its answer). */
  private readonly waits = new Set<AbortController>();
  /** The same uses, counted for drained(). */
  private readonly opening = new InFlight();

  constructor(private readonly deps: HubOpenerDeps) {}

  /**
   * Resolves when every use being opened and every admitted use has ended (a stopping hub lets them
   * finish), or after `timeoutMs`.
   */
  async drained(timeoutMs: number): Promise<void> {
    await Promise.all([this.opening.settled(timeoutMs), this.active.empty(timeoutMs)]);
  }

  /**
   * The end of a stopping hub's drain: every use still open ends with an error its client sees. One
   * still waiting (for an agent to come back, for the agent's answer) is refused with
   * WARREN_E_UNAVAILABLE; a stream still relaying is aborted, so its client gets a reset. Left to the
   * process's exit, a forward's client would get a FIN instead: a stream cut before its first byte would
   * look complete.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const w of this.waits) w.abort();
    await this.active.revokeWhere(() => false, STOPPING);
  }

  /** Uses being admitted or dialled (waiting for a reconnecting agent, for the agent's answer). */
  get openingCount(): number {
    return this.opening.size;
  }

  /** A method, not the field: the compiler would take the field read before an await to hold after it. */
  private stoppedYet(): boolean {
    return this.stopping;
  }

  /** Uses admitted and still open (streams, kube requests). */
  get activeCount(): number {
    return this.active.size;
  }

  admit(req: AdmitRequest): Promise<Admission> {
    return this.admitFor(req, undefined);
  }

  /** `client`: the door's client (OpenRequest.early), whose going ends the waits as `req.signal` does. */
  private async admitFor(req: AdmitRequest, client: Duplex | undefined): Promise<Admission> {
    if (this.stopping) throw stoppingError();
    const wait = this.waitFor(req.signal, client);
    let plan: Plan;
    let slot;
    try {
      plan = 'cluster' in req ? await this.planCluster(req.cluster, req.principal) : await this.planTarget(req.target, req.principal, wait.signal, req.gateway);
      slot = this.deps.quotas.acquire(req.principal.user);
      // stop() may have come while the plan awaited: it refuses what is not admitted yet.
      if (this.stoppedYet()) throw stoppingError();
    } catch (err) {
      wait.done();
      slot?.release();
      const e = this.stoppedYet() ? stoppingError() : asWarrenError(err);
      if (e.code === 'WARREN_E_QUOTA') this.deps.metrics.quotaRefusals.inc({ door: req.door, quota: typeof e.details?.quota === 'string' ? e.details.quota : '' });
      throw e;
    }
    const revoked = new AbortController();
    const entry: ActiveStream = {
      principal: req.principal, reach: plan.reach, agent: undefined, revoked: undefined,
      onRevoke: () => {
        this.deps.metrics.revocations.inc({ door: req.door });
        revoked.abort();
      },
    };
    const unwatch = this.active.add(entry);
    let ended = false;
    const cluster = 'cluster' in plan.reach ? plan.reach.cluster : undefined;
    return {
      kubeGroups: plan.kubeGroups,
      revoked: revoked.signal,
      pool: cluster === undefined ? undefined : this.pool(cluster),
      usedAgent: (agent) => void (entry.agent = agent),
      dial: async (early) => {
        const started = Date.now();
        try {
          const { tunnel, stream } = await this.dial(plan, req.principal, wait.signal, early, (t) => {
            if (slot.bindAgent(t.name)) return true;
            this.deps.metrics.quotaRefusals.inc({ door: req.door, quota: 'agent-share' });
            return false;
          });
          entry.agent = tunnel.name;
          if (!('cluster' in plan.reach)) entry.reach = { ...plan.reach, agent: tunnel.name };
          this.deps.metrics.dials.inc({ door: req.door, result: 'ok' });
          this.deps.metrics.dialSeconds.observe({ door: req.door }, (Date.now() - started) / 1000);
          return { agent: tunnel.name, stream: plan.service ? streamSocket(stream) : stream };
        } catch (err) {
          const e = this.stoppedYet() ? stoppingError() : asWarrenError(err);
          this.deps.metrics.dials.inc({ door: req.door, result: e.code });
          throw e;
        } finally {
          wait.done();
        }
      },
      end: () => {
        if (ended) return;
        ended = true;
        wait.done();
        unwatch();
        slot.release();
      },
    };
  }

  async open(req: OpenRequest): Promise<OpenedStream> {
    const started = Date.now();
    const { audit, metrics } = this.deps;
    const base = { kind: 'stream' as const, user: req.principal.user, door: req.door, target: req.target, source: req.source };
    let admission: Admission | undefined;
    try {
      admission = await this.admitFor(req, req.early);
      const early = req.early ? new EarlyData(req.early) : undefined;
      const { agent, stream } = await admission.dial(early);
      const a = admission;
      stream.once('close', () => a.end());
      const sentEarly = early?.sent ?? 0;
      return {
        agent,
        stream,
        sentEarly,
        relay: async (client): Promise<RelayResult> => {
          const cut = () => (abortStream(stream), abortStream(client));
          if (a.revoked.aborted) cut();
          else a.revoked.addEventListener('abort', cut, { once: true });
          metrics.streamsOpen.inc({ door: req.door });
          const counts = await relay(client, stream);
          const bytesIn = sentEarly + counts.aToB;
          metrics.streamsOpen.dec({ door: req.door });
          metrics.bytes.inc({ door: req.door, direction: 'in' }, bytesIn);
          metrics.bytes.inc({ door: req.door, direction: 'out' }, counts.bToA);
          a.end();
          // Cut by stop(), the hub's own going rather than a revocation: an error, not a denial.
          const revoked = a.revoked.aborted && !this.stopping;
          const reason = revoked ? 'revoked' : counts.error ? `aborted: ${this.stopping ? STOPPING : counts.error.message}` : 'closed';
          await audit.record({
            ...base, agent, result: revoked ? 'denied' : counts.error ? 'error' : 'ok', reason,
            bytesIn, bytesOut: counts.bToA, durationMs: Date.now() - started,
          }, { deferred: true });
          return { bytesIn, bytesOut: counts.bToA, reason };
        },
      };
    } catch (err) {
      admission?.end();
      // Not logged here: the door that answers the client logs a 5xx once, under the id its answer carries.
      const e = asWarrenError(err);
      await audit.record({
        ...base, agent: typeof e.details?.agent === 'string' ? e.details.agent : null,
        result: e.code === 'WARREN_E_FORBIDDEN' || e.code === 'WARREN_E_QUOTA' ? 'denied' : 'error',
        reason: `${e.code}: ${e.message}`, durationMs: Date.now() - started,
      });
      throw e;
    }
  }

  /**
   * Closes every open use that is no longer allowed — its token revoked, its agent removed, or no
   * grant left that allows it — after an admin change. Returns how many were cut.
   */
  async revoke(why: string): Promise<number> {
    const { store } = this.deps;
    const grants = await store.listGrants();
    const tokens = new Map<string, Promise<boolean>>();
    const agents = new Map<string, Promise<boolean>>();
    const memo = (m: Map<string, Promise<boolean>>, key: string, f: () => Promise<boolean>) => m.get(key) ?? (m.set(key, f()), m.get(key)!);
    const cut = await this.active.revokeWhere(async (s) => {
      const p = s.principal;
      if (p.tokenId && !(await memo(tokens, p.tokenId, async () => (await store.getAccessToken(p.tokenId!))?.revokedAt === null))) return false;
      if (s.agent && !(await memo(agents, s.agent, async () => (await store.getAgent(s.agent!)) !== undefined))) return false;
      if (p.scope) return true;
      return 'cluster' in s.reach ? clusterAccess(grants, p, s.reach.cluster).allowed : findTargetGrant(grants, p, s.reach) !== undefined;
    }, why);
    if (cut > 0) this.deps.log.info({ streams: cut, why }, 'revoked open streams');
    return cut;
  }

  close(): void {
    for (const p of this.pools.values()) p.destroy();
    this.pools.clear();
  }

  /**
   * An abort signal for one use's waits, aborted by the caller's signal, by the client's going (its
   * 'close': a reset, or both directions ended; a FIN alone does not, a client may half-close right
   * after its request and still want the answer) or by stop(); done() forgets it (a use that is open,
   * refused or ended waits no more).
   */
  private waitFor(signal: AbortSignal | undefined, client: Duplex | undefined): { signal: AbortSignal; done(): void } {
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    if (signal?.aborted || client?.destroyed) ctl.abort();
    signal?.addEventListener('abort', abort, { once: true });
    client?.once('close', abort);
    this.waits.add(ctl);
    const counted = this.opening.begin();
    return {
      signal: ctl.signal,
      done: () => {
        signal?.removeEventListener('abort', abort);
        client?.off('close', abort);
        this.waits.delete(ctl);
        counted();
      },
    };
  }

  private async planTarget(target: string, principal: Principal, signal: AbortSignal, gateway?: ViaGateway): Promise<Plan> {
    const hp = parseHostPort(target);
    if (!hp) throw new WarrenError('WARREN_E_BAD_TARGET', `target "${truncate(target)}" is not HOST:PORT`, { target: truncate(target) });
    if (gateway) {
      // An egress rule: the admin chose the gateway, the source address and the target (scope).
      if (!principal.scope || !sameTarget(principal.scope.target, hp)) {
        throw new WarrenError('WARREN_E_FORBIDDEN', `user "${principal.user}" may not choose a gateway`, { agent: gateway.agent });
      }
      // A gateway that is reconnecting (its hub stopping or dying) is waited for, as any agent is.
      const { tunnels } = this.deps;
      const tunnel = tunnels.get(gateway.agent) ?? (tunnels.reconnecting(gateway.agent) ? await tunnels.moved(gateway.agent, undefined, Math.min(this.deps.dialTimeoutMs, RECONNECT_WAIT_MS), signal) : undefined);
      if (!tunnel) throw new WarrenError('WARREN_E_AGENT_OFFLINE', `gateway agent "${gateway.agent}" is not connected to the hub right now`, { agent: gateway.agent });
      return {
        agents: [tunnel], authority: formatHostPort(hp), service: undefined, sourceIp: gateway.sourceIp,
        reach: { agent: gateway.agent, host: hp.host, port: hp.port }, kubeGroups: [],
      };
    }
    const resolution = await this.resolve(hp.host, principal, signal);
    const first = resolution.agents[0]!;
    const scope = principal.scope;
    // A scoped principal (a forward) needs no grants: skip the store query on its every connection.
    const grants = scope ? [] : await this.deps.store.listGrants();
    const allowed = resolution.agents.filter((a) =>
      scope ? sameTarget(scope.target, hp) : findTargetGrant(grants, principal, { agent: a, host: resolution.dialHost, port: hp.port }),
    );
    if (allowed.length === 0) {
      throw new WarrenError('WARREN_E_FORBIDDEN', `user "${principal.user}" has no grant for ${formatHostPort(hp)} through agent "${first}"`, {
        target: formatHostPort(hp), agent: first,
      });
    }
    return {
      agents: allowed.flatMap((name) => this.deps.tunnels.get(name) ?? []),
      authority: formatHostPort({ host: resolution.dialHost, port: hp.port }),
      service: undefined,
      reach: { agent: allowed[0]!, host: resolution.dialHost, port: hp.port },
      kubeGroups: [],
    };
  }

  /** The router's answer; an agent that is offline only for now (reconnecting) is waited for first. */
  private async resolve(host: string, principal: Principal, signal: AbortSignal) {
    try {
      return resolveTarget(host, this.deps.tunnels);
    } catch (err) {
      const agent = err instanceof WarrenError && err.code === 'WARREN_E_AGENT_OFFLINE' ? err.details?.agent : undefined;
      if (typeof agent !== 'string' || !this.deps.tunnels.reconnecting(agent)) throw err;
      this.deps.log.debug({ agent, user: principal.user }, 'waiting for a reconnecting agent');
      if (!(await this.deps.tunnels.moved(agent, undefined, Math.min(this.deps.dialTimeoutMs, RECONNECT_WAIT_MS), signal))) throw err;
      return resolveTarget(host, this.deps.tunnels);
    }
  }

  private async planCluster(cluster: string, principal: Principal): Promise<Plan> {
    const notFound = () => new WarrenError('WARREN_E_NOT_FOUND', `cluster "${cluster.slice(0, 100)}" is not known to this hub`, { cluster: cluster.slice(0, 100) });
    if (!isLabel(cluster)) throw notFound();
    const agents = this.clusterAgents(cluster);
    if (agents.length === 0 && !(await isKnownCluster(this.deps.store, cluster))) throw notFound();
    const access = clusterAccess(await this.deps.store.listGrants(), principal, cluster);
    if (!access.allowed) {
      throw new WarrenError('WARREN_E_FORBIDDEN', `user "${principal.user}" has no grant for cluster ${cluster} (an admin can add one: warren grant --user ${principal.user} --cluster ${cluster})`, { cluster });
    }
    if (agents.length === 0) throw new WarrenError('WARREN_E_AGENT_OFFLINE', `cluster ${cluster} has no connected agent`, { cluster });
    return { agents, authority: cluster, service: KUBE_SERVICE, reach: { cluster }, kubeGroups: access.kubeGroups };
  }

  /** Connected agents serving `cluster`, least loaded first (ties in random order). */
  private clusterAgents(cluster: string): AgentLink[] {
    const out: Array<{ t: AgentLink; k: number }> = [];
    for (const t of this.deps.tunnels.serving(cluster)) if (t.usable) out.push({ t, k: Math.random() });
    return out.sort((a, b) => a.t.streamsOpen - b.t.streamsOpen || a.k - b.k).map((x) => x.t);
  }

  /**
   * Opens the stream on the first agent that takes it. Only a lost tunnel (or, for the kube service,
   * an agent that refuses it) is worth the next agent: a refusal from the target would repeat. When
   * every tunnel was lost, the first agent is given a moment to come back (a hub stopping or dying
   * sends its agents to another hub) and tried once more.
   */
  private async dial(plan: Plan, principal: Principal, signal: AbortSignal | undefined, early: EarlyData | undefined, take: (t: AgentLink) => boolean) {
    try {
      return await this.dialAny(plan.agents, plan, principal, signal, early, take);
    } catch (err) {
      const first = plan.agents[0];
      if (!first || plan.service || asWarrenError(err).code !== 'WARREN_E_TUNNEL_LOST') throw err;
      const back = await this.deps.tunnels.moved(first.name, first, Math.min(this.deps.dialTimeoutMs, RECONNECT_WAIT_MS), signal);
      if (!back) throw err;
      return this.dialAny([back], plan, principal, signal, early, () => true);
    }
  }

  private async dialAny(
    agents: readonly AgentLink[], plan: Plan, principal: Principal, signal: AbortSignal | undefined, early: EarlyData | undefined, take: (t: AgentLink) => boolean,
  ) {
    let last: WarrenError | undefined;
    for (const tunnel of agents) {
      if (!take(tunnel)) {
        last ??= agentShareError(tunnel.name, principal.user, this.deps.quotas.limits.perAgent);
        continue;
      }
      try {
        const stream = await tunnel.open(plan.authority, {
          timeoutMs: this.deps.dialTimeoutMs, service: plan.service, ...(plan.sourceIp ? { sourceIp: plan.sourceIp } : {}), ...(signal ? { signal } : {}),
          ...(early ? { early } : {}),
        });
        return { tunnel, stream };
      } catch (err) {
        last = asWarrenError(err);
        if (last.code !== 'WARREN_E_TUNNEL_LOST' && !plan.service) break;
      }
    }
    const agent = 'cluster' in plan.reach ? undefined : plan.reach.agent;
    throw last ?? new WarrenError('WARREN_E_AGENT_OFFLINE', `agent "${agent}" is not connected to the hub right now`, { agent });
  }

  /** The keep-alive pool of kube streams for `cluster`; its streams are the hub's, not any caller's. */
  private pool(cluster: string): KubeStreamPool {
    let pool = this.pools.get(cluster);
    if (!pool) {
      pool = new KubeStreamPool(async () => {
        const agents = this.clusterAgents(cluster);
        if (agents.length === 0) throw new WarrenError('WARREN_E_AGENT_OFFLINE', `cluster ${cluster} has no connected agent`, { cluster });
        const plan: Plan = { agents, authority: cluster, service: KUBE_SERVICE, reach: { cluster }, kubeGroups: [] };
        const { tunnel, stream } = await this.dial(plan, { user: 'hub', groups: [], via: 'token' }, undefined, undefined, () => true);
        const socket = streamSocket(stream);
        socket.tag = tunnel.name;
        return socket;
      });
      this.pools.set(cluster, pool);
    }
    return pool;
  }
}

/** A scoped principal's one target, compared in canonical form (case, IPv6 spelling). */
function sameTarget(scoped: string, hp: { host: string; port: number }): boolean {
  const s = parseHostPort(scoped);
  return s !== undefined && formatHostPort(s) === formatHostPort(hp);
}

function truncate(s: string): string {
  return s.length > 300 ? s.slice(0, 300) + '…' : s;
}

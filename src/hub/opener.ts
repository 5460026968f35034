/**
 * The hub's implementation of the doors' `Opener`: resolve the target to an agent (router), check the
 * caller's grants (policy, default deny), dial through the tunnel, and audit the outcome. When a route
 * is served by several agents and the chosen tunnel dies mid-open, the next agent is tried.
 */
import { WarrenError, asWarrenError } from '../errors.js';
import { formatHostPort, parseHostPort } from '../hostPort.js';
import { relay } from '../tunnel/relay.js';
import type { Store } from '../store/store.js';
import type { OpenRequest, Opener, OpenedStream, RelayResult } from './doors/door.js';
import type { AgentTunnels } from './agentTunnels.js';
import type { Audit } from './audit.js';
import type { HubMetrics } from './metrics.js';
import { findTargetGrant } from './policy.js';
import { resolveTarget } from './router.js';

export interface HubOpenerDeps {
  readonly tunnels: AgentTunnels;
  readonly store: Store;
  readonly audit: Audit;
  readonly metrics: HubMetrics;
  readonly dialTimeoutMs: number;
}

export class HubOpener implements Opener {
  constructor(private readonly deps: HubOpenerDeps) {}

  async open(req: OpenRequest): Promise<OpenedStream> {
    const started = Date.now();
    const { audit, metrics } = this.deps;
    const base = { kind: 'stream' as const, user: req.principal.user, door: req.door, target: req.target, source: req.source };
    let agentName: string | null = null;
    try {
      const hp = parseHostPort(req.target);
      if (!hp) throw new WarrenError('WARREN_E_BAD_TARGET', `target "${truncate(req.target)}" is not HOST:PORT`, { target: truncate(req.target) });
      const resolution = resolveTarget(hp.host, this.deps.tunnels);
      agentName = resolution.agents[0]!;
      const scope = req.principal.scope;
      // A scoped principal (a forward) needs no grants: skip the store query on its every connection.
      const grants = scope ? [] : await this.deps.store.listGrants();
      const allowed = scope
        ? resolution.agents.filter(() => sameTarget(scope.target, hp))
        : resolution.agents.filter((a) => findTargetGrant(grants, req.principal, { agent: a, host: resolution.dialHost, port: hp.port }));
      if (allowed.length === 0) {
        throw new WarrenError('WARREN_E_FORBIDDEN', `user "${req.principal.user}" has no grant for ${formatHostPort(hp)} through agent "${agentName}"`, {
          target: formatHostPort(hp), agent: agentName,
        });
      }
      let lastError: WarrenError | undefined;
      for (const name of allowed) {
        agentName = name;
        const tunnel = this.deps.tunnels.get(name);
        if (!tunnel) continue;
        try {
          const stream = await tunnel.open(resolution.dialHost, hp.port, this.deps.dialTimeoutMs, req.signal);
          metrics.dials.inc({ door: req.door, result: 'ok' });
          metrics.dialSeconds.observe({ door: req.door }, (Date.now() - started) / 1000);
          return this.opened(name, stream, req, base, started);
        } catch (err) {
          lastError = asWarrenError(err);
          // Only a lost tunnel is worth another agent; a refusal from the target would repeat.
          if (lastError.code !== 'WARREN_E_TUNNEL_LOST') break;
        }
      }
      throw lastError ?? new WarrenError('WARREN_E_AGENT_OFFLINE', `agent "${agentName}" is not connected to the hub right now`, { agent: agentName });
    } catch (err) {
      // Not logged here: the door that answers the client logs a 5xx once, under the id its answer carries.
      const e = asWarrenError(err);
      metrics.dials.inc({ door: req.door, result: e.code });
      await audit.record({
        ...base, agent: agentName, result: e.code === 'WARREN_E_FORBIDDEN' ? 'denied' : 'error',
        reason: `${e.code}: ${e.message}`, durationMs: Date.now() - started,
      });
      throw e;
    }
  }

  private opened(
    agent: string,
    stream: OpenedStream['stream'],
    req: OpenRequest,
    base: { kind: 'stream'; user: string; door: string; target: string; source: string },
    started: number,
  ): OpenedStream {
    const { audit, metrics } = this.deps;
    return {
      agent,
      stream,
      relay: async (client): Promise<RelayResult> => {
        metrics.streamsOpen.inc({ door: req.door });
        const counts = await relay(client, stream);
        metrics.streamsOpen.dec({ door: req.door });
        metrics.bytes.inc({ door: req.door, direction: 'in' }, counts.aToB);
        metrics.bytes.inc({ door: req.door, direction: 'out' }, counts.bToA);
        const reason = counts.error ? `aborted: ${counts.error.message}` : 'closed';
        await audit.record({
          ...base, agent, result: counts.error ? 'error' : 'ok', reason,
          bytesIn: counts.aToB, bytesOut: counts.bToA, durationMs: Date.now() - started,
        });
        return { bytesIn: counts.aToB, bytesOut: counts.bToA, reason };
      },
    };
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

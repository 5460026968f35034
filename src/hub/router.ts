/**
 * Target resolution (design §3), first match wins:
 *
 *   1. db.prod.svc.alpha.warren:5432  → agent "alpha" dials db.prod.svc:5432
 *      alpha.warren:22                → agent "alpha" dials its own host (localhost:22)
 *   2. worker:22                      → agent "worker" dials its own host (localhost:22)
 *   3. 10.20.0.5:8080, x.corp.internal:443
 *                                     → an agent advertising a route that contains the host
 *                                       (CIDR for IPs, DNS suffix such as .corp.internal for names);
 *                                       longest match wins; ties share the load and fail over
 *   4. anything else                  → WARREN_E_UNKNOWN_TARGET naming the host
 */
import net from 'node:net';
import { WarrenError } from '../shared/errors.js';
import { parseCidr, cidrContains } from '../shared/patterns.js';

export const SELF_HOST = 'localhost';

export interface RoutableAgent {
  readonly name: string;
  readonly routes: readonly string[];
  readonly streamsOpen: number;
}

export interface RouterView {
  /** Agents with an open tunnel. */
  connected(): Iterable<RoutableAgent>;
  /** Whether an agent of this name is registered (connected or not). */
  isKnown(name: string): boolean;
}

export interface Resolution {
  readonly rule: 1 | 2 | 3;
  /** Connected agents that can serve the target, best first (for rule 3: least loaded first). */
  readonly agents: readonly string[];
  /** The route that matched (rule 3). */
  readonly route?: string;
  readonly dialHost: string;
}

/** How well a route covers a host: the prefix length for CIDRs, the suffix length for DNS suffixes; -1: no match. */
export function routeScore(route: string, host: string): number {
  if (net.isIP(host)) return parseCidr(route) && cidrContains(route, host) ? parseCidr(route)!.prefix : -1;
  if (route.startsWith('.')) return host.endsWith(route) || host === route.slice(1) ? route.length : -1;
  return route.toLowerCase() === host ? 1000 : -1;
}

export function resolveTarget(host: string, view: RouterView): Resolution {
  const connected = [...view.connected()];
  const single = (name: string, rule: 1 | 2, dialHost: string): Resolution => {
    if (!connected.some((a) => a.name === name)) {
      if (view.isKnown(name)) throw new WarrenError('WARREN_E_AGENT_OFFLINE', `agent "${name}" is not connected to the hub right now`, { agent: name, host });
      throw new WarrenError('WARREN_E_UNKNOWN_TARGET', `no agent named "${name}" (from host "${host}")`, { agent: name, host });
    }
    return { rule, agents: [name], dialHost };
  };

  // Rule 1: <host>.<agent>.warren or <agent>.warren
  if (host.endsWith('.warren')) {
    const rest = host.slice(0, -'.warren'.length);
    const dot = rest.lastIndexOf('.');
    const agent = rest.slice(dot + 1);
    const inner = dot < 0 ? SELF_HOST : rest.slice(0, dot);
    if (agent) return single(agent, 1, inner);
  }

  // Rule 2: exactly an agent's name
  if (view.isKnown(host) || connected.some((a) => a.name === host)) return single(host, 2, SELF_HOST);

  // Rule 3: advertised routes, longest match
  let best = -1;
  let bestRoute: string | undefined;
  let winners: RoutableAgent[] = [];
  for (const a of connected) {
    for (const r of a.routes) {
      const score = routeScore(r, host);
      if (score < 0) continue;
      if (score > best) {
        best = score;
        bestRoute = r;
        winners = [a];
      } else if (score === best && !winners.includes(a)) winners.push(a);
    }
  }
  if (winners.length > 0) {
    // Least-loaded first; ties in random order so new connections spread across equal agents.
    const ordered = winners.map((a) => ({ a, k: Math.random() })).sort((x, y) => x.a.streamsOpen - y.a.streamsOpen || x.k - y.k);
    return { rule: 3, agents: ordered.map((o) => o.a.name), route: bestRoute!, dialHost: host };
  }
  throw new WarrenError('WARREN_E_UNKNOWN_TARGET', `no agent serves host "${host}": it is not NAME.<agent>.warren, not an agent name, and in no advertised route`, { host });
}

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
import { cidrContains, compileCidr, ipValue, maskIp } from '../shared/patterns.js';

export const SELF_HOST = 'localhost';

export interface RoutableAgent {
  readonly name: string;
  readonly routes: readonly string[];
  readonly streamsOpen: number;
}

export interface RouterView {
  /** The connected agent of this name. */
  get(name: string): RoutableAgent | undefined;
  /** Whether an agent of this name is registered (connected or not). */
  isKnown(name: string): boolean;
  /** The connected agents whose advertised route covers `host` best (rule 3); undefined when none does. */
  byRoute(host: string): RouteMatch<RoutableAgent> | undefined;
}

export interface RouteMatch<A extends RoutableAgent> {
  /** The route as the first of `agents` advertises it. */
  readonly route: string;
  /** routeScore() of the route: longer matches score higher. */
  readonly score: number;
  readonly agents: readonly A[];
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
  if (net.isIP(host)) return cidrContains(route, host) ? compileCidr(route)!.prefix : -1;
  if (route.startsWith('.')) return host.endsWith(route) || host === route.slice(1) ? route.length : -1;
  return route.toLowerCase() === host ? 1000 : -1;
}

/** Agents advertising one route (under one spelling each: 10.0.0.0/8 and 10.1.0.0/8 are the same network). */
type Bucket<A> = Map<A, string>;

/** Where one route of an agent sits in the index. */
interface Place<A> {
  readonly map: Map<unknown, Bucket<A>>;
  readonly key: unknown;
  /** For a CIDR: its family and prefix length, whose map goes when it empties. */
  readonly net?: { readonly family: 4 | 6; readonly prefix: number };
}

/**
 * Connected agents by name, by route and by the clusters they serve, so that finding who serves a host
 * or a cluster costs the same with ten agents or ten thousand: a route lookup tries each prefix length
 * in use (at most 33 or 129 map reads) and each suffix of the host name, never every agent. It gives what
 * routeScore() over every agent's routes would (a unit test holds the two together). An agent's routes
 * and clusters are read when it is set.
 */
export class AgentIndex<A extends RoutableAgent> {
  private readonly byName = new Map<string, { agent: A; places: Array<Place<A>> }>();
  private readonly byCluster = new Map<string, Set<A>>();
  /** CIDRs per family: prefix length → network → agents; `prefixes` longest first. */
  private readonly nets = {
    4: { prefixes: [] as number[], byPrefix: new Map<number, Map<unknown, Bucket<A>>>() },
    6: { prefixes: [] as number[], byPrefix: new Map<number, Map<unknown, Bucket<A>>>() },
  };
  /** DNS suffixes (`.corp.internal`) as written. */
  private readonly suffixes = new Map<unknown, Bucket<A>>();
  /** Anything else: a route naming one host (routeScore's 1000), lower-cased. */
  private readonly exact = new Map<unknown, Bucket<A>>();

  constructor(private readonly clustersOf: (agent: A) => readonly string[] = () => []) {}

  get size(): number {
    return this.byName.size;
  }

  get(name: string): A | undefined {
    return this.byName.get(name)?.agent;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  *values(): IterableIterator<A> {
    for (const e of this.byName.values()) yield e.agent;
  }

  keys(): IterableIterator<string> {
    return this.byName.keys();
  }

  /** Adds `agent`, replacing the one of its name. */
  set(agent: A): void {
    this.delete(agent.name);
    const places = agent.routes.map((route) => {
      const place = this.place(route);
      let b = place.map.get(place.key);
      if (!b) place.map.set(place.key, (b = new Map<A, string>()));
      if (!b.has(agent)) b.set(agent, route);
      return place;
    });
    this.byName.set(agent.name, { agent, places });
    for (const c of this.clustersOf(agent)) {
      let set = this.byCluster.get(c);
      if (!set) this.byCluster.set(c, (set = new Set()));
      set.add(agent);
    }
  }

  /** The agents serving a Kubernetes cluster. */
  serving(cluster: string): A[] {
    return [...(this.byCluster.get(cluster) ?? [])];
  }

  delete(name: string): boolean {
    const e = this.byName.get(name);
    if (!e) return false;
    this.byName.delete(name);
    for (const c of this.clustersOf(e.agent)) {
      const set = this.byCluster.get(c);
      if (set?.delete(e.agent) && set.size === 0) this.byCluster.delete(c);
    }
    for (const { map, key, net } of e.places) {
      const b = map.get(key);
      if (!b?.delete(e.agent) || b.size > 0) continue;
      map.delete(key);
      if (net && map.size === 0) {
        const t = this.nets[net.family];
        t.byPrefix.delete(net.prefix);
        t.prefixes = t.prefixes.filter((p) => p !== net.prefix);
      }
    }
    return true;
  }

  clear(): void {
    for (const name of [...this.byName.keys()]) this.delete(name);
  }

  /**
   * The agents whose route covers `host` best (longest prefix, longest suffix), leaving out those `skip`
   * is true for; ties — several agents advertising the same network or suffix — all come back.
   */
  lookup(host: string, skip?: (agent: A) => boolean): RouteMatch<A> | undefined {
    const found = (b: Bucket<A> | undefined, score: number): RouteMatch<A> | undefined => {
      if (!b) return undefined;
      const agents = skip ? [...b.keys()].filter((a) => !skip(a)) : [...b.keys()];
      return agents.length > 0 ? { route: b.get(agents[0]!)!, score, agents } : undefined;
    };
    if (net.isIP(host)) {
      const ip = ipValue(host);
      if (!ip) return undefined;
      const t = this.nets[ip.family];
      for (const prefix of t.prefixes) {
        const m = found(t.byPrefix.get(prefix)!.get(maskIp(ip.family, ip.value, prefix)), prefix);
        if (m) return m;
      }
      return undefined;
    }
    const m = found(this.exact.get(host), 1000) ?? found(this.suffixes.get(`.${host}`), host.length + 1);
    if (m) return m;
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const s = found(this.suffixes.get(host.slice(dot)), host.length - dot);
      if (s) return s;
    }
    return undefined;
  }

  /** Where a route goes in the index. */
  private place(route: string): Place<A> {
    const c = compileCidr(route);
    if (c) {
      const t = this.nets[c.family];
      let map = t.byPrefix.get(c.prefix);
      if (!map) {
        t.byPrefix.set(c.prefix, (map = new Map<unknown, Bucket<A>>()));
        t.prefixes = [...t.prefixes, c.prefix].sort((x, y) => y - x);
      }
      return { map, key: c.network, net: { family: c.family, prefix: c.prefix } };
    }
    if (route.startsWith('.')) return { map: this.suffixes, key: route };
    return { map: this.exact, key: route.toLowerCase() };
  }
}

/** A RouterView over a list of agents, all taken as connected (an admin's explanation of a route, tests). */
export function listView<A extends RoutableAgent>(agents: Iterable<A>, isKnown: (name: string) => boolean): RouterView & { get(name: string): A | undefined; connected(): Iterable<A> } {
  const index = new AgentIndex<A>();
  for (const a of agents) index.set(a);
  return { get: (name) => index.get(name), isKnown, byRoute: (host) => index.lookup(host), connected: () => index.values() };
}

export function resolveTarget(host: string, view: RouterView): Resolution {
  const single = (name: string, rule: 1 | 2, dialHost: string): Resolution => {
    if (!view.get(name)) {
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
  if (view.isKnown(host) || view.get(host)) return single(host, 2, SELF_HOST);

  // Rule 3: advertised routes, longest match
  const match = view.byRoute(host);
  if (match) {
    // Least-loaded first; ties in random order so new connections spread across equal agents.
    const ordered = match.agents.map((a) => ({ a, k: Math.random() })).sort((x, y) => x.a.streamsOpen - y.a.streamsOpen || x.k - y.k);
    return { rule: 3, agents: ordered.map((o) => o.a.name), route: match.route, dialHost: host };
  }
  throw new WarrenError('WARREN_E_UNKNOWN_TARGET', `no agent serves host "${host}": it is not NAME.<agent>.warren, not an agent name, and in no advertised route`, { host });
}

/**
 * `warren route explain HOST:PORT`: a dry run of what the next connection to a target would meet — the
 * router's rule (design §3), the agents that could serve it and whether each is connected, and the grant
 * that lets the user through (or that none does). Nothing is dialled and nothing is audited; the answer
 * is computed by the same `resolveTarget` and `findTargetGrant` the opener uses, so it cannot drift
 * from what a real connection does.
 *
 *   10.20.1.7:8080 with agents a (route 10.20.0.0/16, connected) and b (same route, not connected)
 *     → rule 3, route 10.20.0.0/16, agent "a";
 *       candidates [a connected selected, b not connected]
 *   db.prod.alpha.warren:5432 with alpha offline
 *     → rule 1, refusal WARREN_E_AGENT_OFFLINE
 *
 * Agents that are not connected are listed with the routes they advertised when last connected; the
 * router itself only considers connected agents, so a route only they advertise is rule 4 (refused).
 *
 * @module
 */
import net from 'node:net';
import { WarrenError, asWarrenError, type ErrorCode } from '../shared/errors.js';
import { formatHostPort, parseHostPort } from '../shared/hostPort.js';
import type { AgentRecord, GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { findTargetGrant } from './policy.js';
import type { JudgedIdentity } from './judgedIdentity.js';
import { listView, resolveTarget, routeScore, SELF_HOST, type RoutableAgent, type RouterView, type Resolution } from './router.js';

export const RULE_NAMES = {
  1: 'HOST.<agent>.warren names the agent',
  2: "HOST is an agent's name (its own host)",
  3: 'HOST falls in a route agents advertise (longest match; least loaded first)',
  4: 'no agent serves HOST: refused',
} as const;

export type Rule = keyof typeof RULE_NAMES;

/** What the router sees of the live agents. */
export interface LiveAgents extends RouterView {
  get(name: string): (RoutableAgent & { readonly info: { readonly routes: readonly string[] } }) | undefined;
  connected(): Iterable<RoutableAgent>;
}

export interface ExplainInput {
  readonly target: string;
  readonly principal: Principal;
  /** Where the principal's groups came from, echoed in the answer. */
  readonly groupsFrom: JudgedIdentity['groupsFrom'];
  readonly live: LiveAgents;
  /** Every registered agent, connected or not. */
  readonly agents: readonly AgentRecord[];
  readonly grants: readonly GrantRecord[];
}

export interface GrantSummary {
  readonly id: string;
  readonly subject: string;
  readonly agent: string | null;
  readonly host: string | null;
  readonly ports: string | null;
}

export interface Candidate {
  readonly agent: string;
  readonly connected: boolean;
  /** The agent's best route for the host (rule 3), else null. */
  readonly route: string | null;
  readonly streamsOpen: number;
  /** Among the agents the router picks from right now (connected, longest match). */
  readonly selected: boolean;
  /** Whether the user's grants allow this target through this agent. */
  readonly allowed: boolean;
  /** The grant that allows it, "admin", or null ("no grant"). */
  readonly grant: GrantSummary | 'admin' | null;
}

export interface RouteExplanation {
  readonly target: string;
  readonly host: string;
  readonly port: number;
  readonly rule: Rule;
  readonly ruleName: string;
  readonly route: string | null;
  /** What the agent would dial (`localhost` for an agent's own host). */
  readonly dialHost: string | null;
  /** The agent the next connection would go to, or null when it would be refused. */
  readonly agent: string | null;
  readonly candidates: readonly Candidate[];
  readonly user: string;
  readonly groups: readonly string[];
  readonly groupsFrom: ExplainInput['groupsFrom'];
  /** Whether the user may reach the target (through the agent above, or any candidate if none is up). */
  readonly allowed: boolean;
  readonly grant: GrantSummary | 'admin' | null;
  /** One line: which grant allows it, or "no grant". */
  readonly grantText: string;
  /** The refusal the next connection would get right now, or null. */
  readonly refusal: { readonly code: ErrorCode; readonly message: string } | null;
}

export function explainRoute(input: ExplainInput): RouteExplanation {
  const hp = parseHostPort(input.target);
  if (!hp) throw new WarrenError('WARREN_E_BAD_TARGET', `target "${input.target.slice(0, 300)}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:22)`, { field: 'target' });
  const { host, port } = hp;
  const { live, principal } = input;
  const records = new Map(input.agents.map((a) => [a.name, a]));

  let resolution: Resolution | undefined;
  let refusal: WarrenError | undefined;
  try {
    resolution = resolveTarget(host, live);
  } catch (err) {
    refusal = asWarrenError(err);
  }

  // The same resolution over every registered agent as if all were up: tells which rule a refused
  // target fell under and which offline agents would have served it.
  const everyone = listView(
    [
      ...input.agents.map((a): RoutableAgent => {
        const up = live.get(a.name);
        return { name: a.name, routes: up?.info.routes ?? a.meta.routes ?? [], streamsOpen: up?.streamsOpen ?? 0 };
      }),
      ...[...live.connected()].filter((up) => !records.has(up.name)),
    ],
    (name) => records.has(name) || live.isKnown(name),
  );
  let ideal: Resolution | undefined;
  try {
    ideal = resolveTarget(host, everyone);
  } catch {
    ideal = undefined;
  }

  let rule: Rule;
  let route: string | null = null;
  let dialHost: string | null;
  if (resolution) {
    rule = resolution.rule;
    route = resolution.route ?? null;
    dialHost = resolution.dialHost;
  } else if (ideal && ideal.rule !== 3) {
    rule = ideal.rule;
    dialHost = ideal.dialHost;
  } else {
    // Rule 1 naming an agent nobody knows, or a route only offline agents advertise (rule 4 now).
    rule = syntacticRule(host, everyone);
    dialHost = rule === 1 ? innerHost(host) : rule === 2 ? SELF_HOST : ideal ? host : null;
  }

  const grantFor = (agent: string): GrantRecord | 'admin' | undefined =>
    dialHost === null ? undefined : findTargetGrant(input.grants, principal, { agent, host: dialHost, port });

  const order = resolution?.agents ?? [];
  const names: string[] = [];
  if (rule === 1 || rule === 2) {
    names.push(...(resolution?.agents ?? ideal?.agents ?? agentNamedBy(host, rule)));
  } else {
    // Every agent with any route covering the host, best match first, the router's own order within.
    const scored = [...everyone.connected()]
      .map((a) => ({ a, best: bestRoute(a.routes, host) }))
      .filter((x) => x.best !== undefined)
      .sort((x, y) => y.best!.score - x.best!.score || rank(order, x.a.name) - rank(order, y.a.name) || x.a.name.localeCompare(y.a.name));
    names.push(...scored.map((x) => x.a.name));
  }
  const candidates: Candidate[] = [...new Set(names)].map((name) => {
    const up = live.get(name);
    const routes = up?.info.routes ?? records.get(name)?.meta.routes ?? [];
    const g = grantFor(name);
    return {
      agent: name,
      connected: up !== undefined,
      route: rule === 1 || rule === 2 ? null : bestRoute(routes, host)?.route ?? null,
      streamsOpen: up?.streamsOpen ?? 0,
      selected: order.includes(name),
      allowed: g !== undefined,
      grant: summarize(g),
    };
  });

  // What the opener does: the first agent in the router's order whose grants allow it.
  const chosen = order.find((name) => grantFor(name) !== undefined) ?? null;
  const judged = resolution ? candidates.filter((c) => c.selected) : candidates;
  const granting = chosen !== null ? candidates.find((c) => c.agent === chosen) : judged.find((c) => c.allowed);
  const grant = granting?.grant ?? null;
  if (!refusal && chosen === null) {
    refusal = new WarrenError('WARREN_E_FORBIDDEN', `user "${principal.user}" has no grant for ${formatHostPort(hp)} through agent "${order[0]}"`);
  }
  return {
    target: formatHostPort(hp),
    host,
    port,
    rule,
    ruleName: RULE_NAMES[rule],
    route,
    dialHost,
    agent: refusal ? null : chosen,
    candidates,
    user: principal.user,
    groups: principal.groups,
    groupsFrom: input.groupsFrom,
    allowed: granting !== undefined && granting.allowed,
    grant,
    grantText: grantText(grant),
    refusal: refusal ? { code: refusal.code, message: refusal.message } : null,
  };
}

function rank(order: readonly string[], name: string): number {
  const i = order.indexOf(name);
  return i < 0 ? Number.MAX_SAFE_INTEGER : i;
}

function bestRoute(routes: readonly string[], host: string): { route: string; score: number } | undefined {
  let best: { route: string; score: number } | undefined;
  for (const r of routes) {
    const score = routeScore(r, host);
    if (score >= 0 && (!best || score > best.score)) best = { route: r, score };
  }
  return best;
}

/** Which of rules 1, 2 the host falls under by its shape alone (for an agent nobody knows), else 4. */
function syntacticRule(host: string, view: RouterView): Rule {
  if (!net.isIP(host) && host.endsWith('.warren') && host.slice(0, -'.warren'.length).split('.').pop()) return 1;
  if (view.isKnown(host)) return 2;
  return 4;
}

function innerHost(host: string): string {
  const rest = host.slice(0, -'.warren'.length);
  const dot = rest.lastIndexOf('.');
  return dot < 0 ? SELF_HOST : rest.slice(0, dot);
}

function agentNamedBy(host: string, rule: Rule): string[] {
  if (rule === 2) return [host];
  return [host.slice(0, -'.warren'.length).split('.').pop()!];
}

function summarize(g: GrantRecord | 'admin' | undefined): GrantSummary | 'admin' | null {
  if (g === undefined) return null;
  if (g === 'admin') return 'admin';
  return { id: g.id, subject: `${g.subjectKind}:${g.subject}`, agent: g.agent, host: g.host, ports: g.ports };
}

function grantText(g: GrantSummary | 'admin' | null): string {
  if (g === null) return 'no grant';
  if (g === 'admin') return 'admin (group warren:admins reaches everything)';
  const parts = [g.subject, `agent=${g.agent}`];
  if (g.host) parts.push(`host=${g.host}`);
  if (g.ports) parts.push(`ports=${g.ports}`);
  return `grant ${g.id} (${parts.join(' ')})`;
}

/** What the API handler needs from the hub. */
export interface ExplainSources {
  readonly live: LiveAgents;
  readonly store: {
    listAgents(): Promise<readonly AgentRecord[]>;
    listGrants(): Promise<readonly GrantRecord[]>;
  };
}

/** `GET /api/v1/routes/explain?target=HOST:PORT`, for the identity judgedIdentity() settled on. */
export async function explainFor(target: string, who: JudgedIdentity, sources: ExplainSources): Promise<RouteExplanation> {
  const [agents, grants] = await Promise.all([sources.store.listAgents(), sources.store.listGrants()]);
  return explainRoute({ target, principal: who.principal, groupsFrom: who.groupsFrom, live: sources.live, agents, grants });
}

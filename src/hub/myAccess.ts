/**
 * What an identity's grants reach, for `warren ls` and GET /api/v1/me/access: one row per agent and
 * target grant that covers it (an agent two grants cover is two rows), with the agent's live state.
 * Admins reach every agent, every host and port. Only the identity's own grants are consulted, so the
 * answer says nothing of other users.
 *
 *   grant user:ana agent=site-* ports=22, agents site-1 (up), site-2 (down), db (up)
 *     → site-1 hosts * ports 22 (online), site-2 hosts * ports 22 (offline)
 */
import type { GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { matchesGlob } from '../shared/patterns.js';
import { isAdmin } from './accessTokens.js';
import { appliesTo } from './policy.js';

export interface AgentState {
  readonly name: string;
  readonly connected: boolean;
  readonly rttMs: number | null;
  readonly lastSeen: string | null;
  readonly version: string | null;
  readonly labels: Record<string, string>;
  readonly routes: readonly string[];
}

export interface ReachableTarget extends Omit<AgentState, 'name'> {
  readonly agent: string;
  /** Hosts the agent may dial for the identity: a glob or CIDR, `localhost` (its own host), `*`. */
  readonly hosts: string;
  /** `22,8000-8100`, or `*`. */
  readonly ports: string;
  /** The grant's id, or `admin`. */
  readonly grant: string;
}

/** The grants that name the identity (as user or through one of its groups). */
export function grantsOf(p: Principal, grants: readonly GrantRecord[]): GrantRecord[] {
  return grants.filter((g) => appliesTo(g, p));
}

export function reachableTargets(p: Principal, grants: readonly GrantRecord[], agents: readonly AgentState[]): ReachableTarget[] {
  // Only these fields: the API's agent views carry more (authority, addresses) than a user may see.
  const row = (a: AgentState, hosts: string, ports: string, grant: string): ReachableTarget => ({
    agent: a.name, connected: a.connected, rttMs: a.rttMs, lastSeen: a.lastSeen, version: a.version, labels: a.labels, routes: a.routes, hosts, ports, grant,
  });
  const sorted = [...agents].sort((x, y) => x.name.localeCompare(y.name));
  if (isAdmin(p)) return sorted.map((a) => row(a, '*', '*', 'admin'));
  const mine = grantsOf(p, grants).filter((g) => g.agent !== null);
  return sorted.flatMap((a) => mine.filter((g) => matchesGlob(g.agent!, a.name)).map((g) => row(a, g.host ?? '*', g.ports ?? '*', g.id)));
}

/**
 * Grants, default deny. A target grant lets a user or group reach hosts through agents:
 *
 *   --agent 'prod-*'                         any host the prod-* agents serve, any port
 *   --agent site1 --host '10.20.0.0/16'      hosts in that CIDR through site1
 *   --agent '*' --host '*.corp.internal' --ports 22,8000-8100
 *
 * The host is matched against the host the agent will dial: `localhost` for an agent's own host
 * (`node1:22`, `node1.warren:22`), otherwise the host as written. A cluster grant lets a user or group
 * use a cluster's API through the kube router (the member cluster's RBAC then decides).
 */
import type { GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { isAdmin } from './accessTokens.js';
import { hostMatches, matchesGlob, portMatches } from '../shared/patterns.js';

export function appliesTo(g: GrantRecord, p: Principal): boolean {
  return g.subjectKind === 'user' ? g.subject === p.user : p.groups.includes(g.subject);
}

export interface TargetCheck {
  readonly agent: string;
  readonly host: string;
  readonly port: number;
}

/** The first grant that allows the target, or undefined (deny). Admins may reach everything. */
export function findTargetGrant(grants: readonly GrantRecord[], p: Principal, t: TargetCheck): GrantRecord | 'admin' | undefined {
  if (isAdmin(p)) return 'admin';
  return grants.find(
    (g) =>
      g.agent !== null &&
      appliesTo(g, p) &&
      matchesGlob(g.agent, t.agent) &&
      (g.host === null || hostMatches(g.host, t.host)) &&
      (g.ports === null || portMatches(g.ports, t.port)),
  );
}

/** Cluster access: allowed, plus the extra Kubernetes groups the matching grants add. */
export function clusterAccess(grants: readonly GrantRecord[], p: Principal, cluster: string): { allowed: boolean; kubeGroups: string[] } {
  const matching = grants.filter((g) => g.cluster !== null && appliesTo(g, p) && matchesGlob(g.cluster, cluster));
  return { allowed: isAdmin(p) || matching.length > 0, kubeGroups: [...new Set(matching.flatMap((g) => g.kubeGroups))] };
}

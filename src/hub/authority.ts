/**
 * Agent authority: what a join token lets an agent claim, checked at enrollment (the name) and at every
 * tunnel admission (clusters, routes and a gateway's source addresses). An agent serves a cluster or a route only when its token said
 * so; that is what stops a second token holder from taking over traffic meant for another agent.
 *
 *   token authority           agent claim              allowed?
 *   --routes 10.1.0.0/16      --route 10.1.2.0/24      yes (inside)
 *   --routes 10.1.0.0/16      --route 10.2.0.0/16      no
 *   --routes 10.1.0.0/16      --route 10.0.0.0/8       no  (wider than allowed)
 *   --routes .corp.internal   --route .db.corp.internal yes (under the suffix)
 *   --routes .corp.internal   --route .internal        no
 *   --clusters prod           --cluster prod           yes
 *   (no flags)                --cluster prod           no  (default: a free name, nothing else)
 *   --source-ips 10.9.0.5     --source-ip 10.9.0.5     yes (exact addresses, no ranges)
 *   (no flags)                --source-ip 10.9.0.5     no
 */
import { WarrenError } from '../shared/errors.js';
import { cidrContains, matchesGlob, parseCidr } from '../shared/patterns.js';
import type { AgentAuthority } from '../store/store.js';

/** True when every address (or name) `claim` covers is covered by `allowed`. */
export function routeWithin(claim: string, allowed: string): boolean {
  const c = parseCidr(claim);
  const a = parseCidr(allowed);
  if (c || a) {
    // A longer prefix whose address lies inside `allowed` shares allowed's first bits in every address.
    return Boolean(c && a && c.family === a.family && c.prefix >= a.prefix && cidrContains(allowed, c.address));
  }
  if (!claim.startsWith('.') || !allowed.startsWith('.')) return false;
  const lc = claim.toLowerCase();
  const la = allowed.toLowerCase();
  return lc === la || lc.endsWith(la);
}

/** Whether the authority lets an agent take `name` (the name must still be free). */
export function nameAllowed(authority: AgentAuthority, name: string): boolean {
  if (authority.name !== undefined) return authority.name === name;
  if (authority.namePattern !== undefined) return matchesGlob(authority.namePattern, name);
  return true;
}

/** The refusal of a name outside the authority, for the join. */
export function nameRefusal(authority: AgentAuthority, name: string): WarrenError | undefined {
  if (nameAllowed(authority, name)) return undefined;
  const allowed = authority.name !== undefined ? `only the name "${authority.name}"` : `only names matching "${authority.namePattern}"`;
  return new WarrenError('WARREN_E_AGENT_CLAIM_DENIED', `agent name "${name}" is not allowed by this join token (it allows ${allowed}); start the agent with an allowed --name, or create a token with warren join-token create --name ${name}`, { agent: name, claim: `name ${name}` });
}

/**
 * The refusal of the first cluster or route an agent claims outside its authority, for admission. The
 * suggested command names every claim of the agent, so one new token covers all of them.
 */
export function claimRefusal(
  name: string,
  authority: AgentAuthority,
  claims: { clusters: readonly string[]; routes: readonly string[]; sourceIps?: readonly string[] | undefined },
): WarrenError | undefined {
  const sourceIps = claims.sourceIps ?? [];
  const cluster = claims.clusters.find((c) => !authority.clusters.includes(c));
  const route = claims.routes.find((r) => !authority.routes.some((a) => routeWithin(r, a)));
  const ip = sourceIps.find((i) => !sourceIpAllowed(authority, i));
  const claim = cluster !== undefined ? `cluster ${cluster}` : route !== undefined ? `route ${route}` : ip !== undefined ? `source-ip ${ip}` : undefined;
  if (claim === undefined) return undefined;
  const what = cluster !== undefined ? `serve cluster "${cluster}"` : route !== undefined ? `serve route "${route}"` : `use source address ${ip}`;
  const flags = [
    ...(claims.clusters.length ? ['--clusters', claims.clusters.join(',')] : []),
    ...(claims.routes.length ? ['--routes', claims.routes.join(',')] : []),
    ...(sourceIps.length ? ['--source-ips', sourceIps.join(',')] : []),
  ].join(' ');
  return new WarrenError(
    'WARREN_E_AGENT_CLAIM_DENIED',
    `agent "${name}" may not ${what}: its join token does not allow it (create one with warren join-token create ${flags})`,
    { agent: name, claim },
  );
}

/** Whether the authority lets a gateway agent dial from (and listen on) `ip`. */
export function sourceIpAllowed(authority: AgentAuthority, ip: string): boolean {
  return (authority.sourceIps ?? []).includes(ip);
}

/** One line for audit rows and listings: `name dev-*, clusters prod, routes none`. */
export function describeAuthority(a: AgentAuthority): string {
  const list = (xs: readonly string[]) => (xs.length ? xs.join(',') : 'none');
  const ips = a.sourceIps?.length ? `, source IPs ${a.sourceIps.join(',')}` : '';
  return `name ${a.name ?? a.namePattern ?? 'any free'}, clusters ${list(a.clusters)}, routes ${list(a.routes)}${ips}`;
}

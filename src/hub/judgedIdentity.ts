/**
 * Whose access a self-service question is about (`route explain`, `audit`, `ls`, clusters): the
 * caller's own, unless the caller is an admin, who may name any user and groups. A non-admin may narrow
 * their own groups (`--groups dev`, to see what one group gives) but not name another user or a group
 * they are not in: either is 403 WARREN_E_FORBIDDEN, so nobody learns what other users may reach.
 *
 *   caller ana [dev,ops], nothing asked          → ana [dev,ops]              (groupsFrom caller)
 *   caller ana [dev,ops], groups=dev             → ana [dev]                  (flag)
 *   caller ana, user=bob                         → 403
 *   caller admin, user=bob                       → bob [groups of bob's live tokens]  (tokens)
 *   caller admin, user=bob, groups=ops           → bob [ops]                  (flag)
 */
import { WarrenError } from '../shared/errors.js';
import type { Principal } from '../doors/door.js';
import { isAdmin } from './accessTokens.js';

export interface JudgedIdentity {
  readonly principal: Principal;
  /** Where its groups came from: the caller's credential, the `groups` asked for, or the user's live tokens. */
  readonly groupsFrom: 'caller' | 'flag' | 'tokens';
}

interface TokenGroups {
  readonly user: string;
  readonly groups: readonly string[];
  readonly revokedAt: number | null;
  readonly expiresAt: number | null;
}

/**
 * `asked.user` and `asked.groups` (comma-separated) as a query gives them; `what` names the thing for
 * the refusal ("audit rows").
 */
export async function judgedIdentity(
  caller: Principal,
  asked: { readonly user?: string | undefined; readonly groups?: string | undefined },
  what: string,
  store: { listAccessTokens(): Promise<readonly TokenGroups[]> },
): Promise<JudgedIdentity> {
  const groups = asked.groups === undefined ? undefined : asked.groups.split(',').map((g) => g.trim()).filter(Boolean);
  const other = asked.user !== undefined && asked.user !== caller.user ? asked.user : undefined;
  if (!isAdmin(caller)) {
    if (other !== undefined) {
      throw new WarrenError('WARREN_E_FORBIDDEN', `user "${caller.user}" may see only their own ${what}; only admins (group warren:admins) may ask about user "${other}"`, { field: 'user' });
    }
    const foreign = (groups ?? []).filter((g) => !caller.groups.includes(g));
    if (foreign.length) {
      throw new WarrenError('WARREN_E_FORBIDDEN', `user "${caller.user}" is not in group ${foreign.join(', ')}; ask about your own groups (${caller.groups.join(', ') || 'none'}) or ask an admin`, { field: 'groups' });
    }
  }
  if (other !== undefined) {
    return { principal: { user: other, groups: groups ?? groupsOfUser(await store.listAccessTokens(), other), via: 'token' }, groupsFrom: groups ? 'flag' : 'tokens' };
  }
  return groups ? { principal: { ...caller, groups }, groupsFrom: 'flag' } : { principal: caller, groupsFrom: 'caller' };
}

/**
 * The groups of a user the caller names: gathered from the user's hub-issued tokens that are neither
 * revoked nor expired (users are not stored apart from their tokens).
 */
export function groupsOfUser(tokens: readonly TokenGroups[], user: string, now = Date.now()): string[] {
  const groups = new Set<string>();
  for (const t of tokens) {
    if (t.user !== user || t.revokedAt !== null || (t.expiresAt !== null && t.expiresAt <= now)) continue;
    for (const g of t.groups) groups.add(g);
  }
  return [...groups].sort();
}

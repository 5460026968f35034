/**
 * Self-service routes, for every authenticated user (admins may ask about anyone, judgedIdentity.ts):
 *
 *   GET /api/v1/me                          → who I am, my groups, when my credential expires, the hub
 *   GET /api/v1/me/access[?user=U&groups=]  → the agents, hosts, ports and clusters my grants reach,
 *                                             with live status (`warren ls`)
 *
 * `route explain`, `audit` and the cluster list are scoped the same way where they are declared.
 */
import type { IncomingMessage } from 'node:http';
import tls from 'node:tls';
import { z } from 'zod';
import { decodeJwt } from 'jose';
import type { Principal } from '../doors/door.js';
import type { Store } from '../store/store.js';
import { isAdmin } from './accessTokens.js';
import { tokenFromHeader } from './auth.js';
import { route, type ApiRoute } from './apiRoute.js';
import { Me, MyAccess, grantView } from './apiSchemas.js';
import { judgedIdentity } from './judgedIdentity.js';
import { grantsOf, reachableTargets, type AgentState } from './myAccess.js';
import { clustersFor } from './kube/clustersApi.js';
import type { ClusterAgentsView } from './kube/clusters.js';

export interface SelfDeps {
  readonly store: Pick<Store, 'listAgents' | 'listGrants' | 'listAccessTokens' | 'getAccessToken'>;
  readonly tunnels: ClusterAgentsView;
  /** Every registered agent with its live state. */
  readonly agents: () => Promise<readonly AgentState[]>;
  readonly hub: () => { url: string; version: string; caFingerprint: string };
}

/** When the credential the request used expires: the token's row, the certificate's notAfter, the JWT's exp. */
async function credentialExpiry(p: Principal, req: IncomingMessage, store: SelfDeps['store']): Promise<number | null> {
  if (p.tokenId !== undefined) return (await store.getAccessToken(p.tokenId))?.expiresAt ?? null;
  if (p.via === 'cert' && req.socket instanceof tls.TLSSocket) return Date.parse(req.socket.getPeerCertificate().valid_to);
  if (p.via === 'jwt' && req.headers.authorization) {
    const { exp } = decodeJwt(tokenFromHeader(req.headers.authorization));
    return exp === undefined ? null : exp * 1000;
  }
  return null;
}

export function selfRoutes(d: SelfDeps): ApiRoute[] {
  return [
    route({
      method: 'GET', path: '/api/v1/me', auth: 'user', summary: 'Who I am: user, groups, admin or not, when my credential expires, and the hub.',
      response: Me,
      handle: async ({ principal, req }) => {
        const expiresAt = await credentialExpiry(principal, req, d.store);
        return {
          user: principal.user, groups: principal.groups, via: principal.via, admin: isAdmin(principal), tokenId: principal.tokenId ?? null,
          expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(), hub: d.hub(),
        };
      },
    }),
    route({
      method: 'GET', path: '/api/v1/me/access', auth: 'user',
      summary: 'What my grants reach: agents (with live status and RTT), hosts, ports and clusters; admins may ask ?user=U[&groups=a,b].',
      query: z.object({
        user: z.string().min(1).optional().describe('admins: judge this user'),
        groups: z.string().optional().describe("comma-separated groups (default: the caller's, or those on the user's live tokens)"),
      }),
      response: MyAccess,
      handle: async ({ principal, query }) => {
        const who = await judgedIdentity(principal, query, 'access', d.store);
        const [grants, agents, clusters] = await Promise.all([d.store.listGrants(), d.agents(), clustersFor(d, who.principal)]);
        return {
          user: who.principal.user, groups: who.principal.groups, groupsFrom: who.groupsFrom, admin: isAdmin(who.principal),
          targets: reachableTargets(who.principal, grants, agents), clusters, grants: grantsOf(who.principal, grants).map(grantView),
        };
      },
    }),
  ];
}

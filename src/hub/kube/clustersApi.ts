/**
 * The admin API's cluster listing, mounted into api.ts's route table:
 *
 *   GET /api/v1/clusters                     → [{name, agents, connectedAgents, connected, kubeGroups}]
 *   GET /api/v1/clusters?user=U&groups=a,b   (admins) the clusters that identity may use
 *
 * Any authenticated user may call it and sees only the clusters a grant gives them (admins: all);
 * `warren kubeconfig --all` builds its contexts from it.
 */
import { z } from 'zod';
import { WarrenError } from '../../shared/errors.js';
import type { Store } from '../../store/store.js';
import { isAdmin } from '../accessTokens.js';
import { clusterAccess } from '../policy.js';
import { route, type ApiRoute } from '../apiRoute.js';
import { Cluster } from '../apiSchemas.js';
import { listClusters, type ClusterAgentsView } from './clusters.js';

export function clusterRoutes(deps: { readonly store: Pick<Store, 'listAgents' | 'listGrants'>; readonly tunnels: ClusterAgentsView }): ApiRoute[] {
  return [
    route({
      method: 'GET', path: '/api/v1/clusters', auth: 'user',
      summary: 'Kubernetes clusters served by agents that the caller (or, for admins, ?user=U&groups=a,b) may use through /k8s/clusters/NAME.',
      query: z.object({ user: z.string().min(1).optional().describe('admins: judge this user'), groups: z.string().optional().describe('admins: comma-separated groups of that user') }),
      response: z.array(Cluster),
      handle: async ({ query, principal }) => {
        let who = principal;
        if (query.user !== undefined) {
          if (!isAdmin(principal)) throw new WarrenError('WARREN_E_FORBIDDEN', 'only admins may list the clusters of another user');
          who = { user: query.user, groups: (query.groups ?? '').split(',').map((g) => g.trim()).filter(Boolean), via: 'token' };
        }
        const grants = await deps.store.listGrants();
        return (await listClusters(deps.store, deps.tunnels))
          .map((c) => ({ ...c, access: clusterAccess(grants, who, c.name) }))
          .filter((c) => c.access.allowed)
          .map(({ access, ...c }) => ({ ...c, kubeGroups: access.kubeGroups }));
      },
    }),
  ];
}

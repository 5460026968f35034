/**
 * The admin API's cluster listing, mounted into api.ts's route table:
 *
 *   GET /api/v1/clusters                     → [{name, agents, connectedAgents, connected, kubeGroups}]
 *   GET /api/v1/clusters?user=U&groups=a,b   (admins) the clusters that identity may use
 *
 * Any authenticated user may call it and sees only the clusters a grant gives them (admins: all);
 * `warren kubeconfig --all` builds its contexts from it.
 */
import { WarrenError } from '../../shared/errors.js';
import type { Store } from '../../store/store.js';
import { isAdmin } from '../accessTokens.js';
import type { Principal } from '../../doors/door.js';
import { clusterAccess } from '../policy.js';
import { listClusters, type ClusterAgentsView } from './clusters.js';

export interface ClusterRoute {
  readonly method: 'GET';
  readonly path: string;
  readonly access: 'user';
  readonly summary: string;
  handle(ctx: { readonly query: URLSearchParams; readonly principal: Principal }): Promise<unknown>;
}

export function clusterRoutes(deps: { readonly store: Pick<Store, 'listAgents' | 'listGrants'>; readonly tunnels: ClusterAgentsView }): ClusterRoute[] {
  return [
    {
      method: 'GET', path: '/api/v1/clusters', access: 'user',
      summary: 'Kubernetes clusters served by agents that the caller (or, for admins, ?user=U&groups=a,b) may use through /k8s/clusters/NAME.',
      handle: async ({ query, principal }) => {
        let who = principal;
        const user = query.get('user');
        if (user !== null) {
          if (!isAdmin(principal)) throw new WarrenError('WARREN_E_FORBIDDEN', 'only admins may list the clusters of another user');
          who = { user, groups: (query.get('groups') ?? '').split(',').map((g) => g.trim()).filter(Boolean), via: 'token' };
        }
        const grants = await deps.store.listGrants();
        return (await listClusters(deps.store, deps.tunnels))
          .map((c) => ({ ...c, access: clusterAccess(grants, who, c.name) }))
          .filter((c) => c.access.allowed)
          .map(({ access, ...c }) => ({ ...c, kubeGroups: access.kubeGroups }));
      },
    },
  ];
}

/**
 * The admin API's cluster listing, mounted into api.ts's route table:
 *
 *   GET /api/v1/clusters                     → [{name, agents, connectedAgents, connected, kubeGroups}]
 *   GET /api/v1/clusters?user=U&groups=a,b   (admins) the clusters that identity may use (judgedIdentity.ts)
 *
 * Any authenticated user may call it and sees only the clusters a grant gives them (admins: all);
 * `warren kubeconfig --all` builds its contexts from it.
 */
import { z } from 'zod';
import type { Store } from '../../store/store.js';
import type { Principal } from '../../doors/door.js';
import { clusterAccess } from '../policy.js';
import { route, type ApiRoute } from '../apiRoute.js';
import { Cluster } from '../apiSchemas.js';
import { judgedIdentity } from '../judgedIdentity.js';
import { listClusters, type ClusterAgentsView } from './clusters.js';

type Sources = { readonly store: Pick<Store, 'listAgents' | 'listGrants' | 'listAccessTokens'>; readonly tunnels: ClusterAgentsView };

/** The clusters `who` may use, with the Kubernetes groups its grants add. */
export async function clustersFor(deps: Sources, who: Principal): Promise<Array<z.input<typeof Cluster>>> {
  const grants = await deps.store.listGrants();
  return (await listClusters(deps.store, deps.tunnels))
    .map((c) => ({ ...c, access: clusterAccess(grants, who, c.name) }))
    .filter((c) => c.access.allowed)
    .map(({ access, ...c }) => ({ ...c, kubeGroups: access.kubeGroups }));
}

export function clusterRoutes(deps: Sources): ApiRoute[] {
  return [
    route({
      method: 'GET', path: '/api/v1/clusters', auth: 'user',
      summary: 'Kubernetes clusters served by agents that the caller (or, for admins, ?user=U&groups=a,b) may use through /k8s/clusters/NAME.',
      query: z.object({
        user: z.string().min(1).optional().describe('admins: judge this user'),
        groups: z.string().optional().describe("comma-separated groups (default: the caller's, or those on the user's live tokens)"),
      }),
      response: z.array(Cluster),
      handle: async ({ query, principal }) => clustersFor(deps, (await judgedIdentity(principal, query, 'clusters', deps.store)).principal),
    }),
  ];
}

/**
 * Assembles the Kubernetes door for the hub's composition root: the router (a client of the hub's
 * one pipeline, the opener), multikube routing by an external JWT's `ctx` claim (when `--jwt-public-key`
 * is given and --jwt-doors includes kube), and the admin API's cluster listing. hub.ts only routes
 * requests and upgrades to it.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../shared/log.js';
import type { Store } from '../../store/store.js';
import type { Audit } from '../audit.js';
import type { HubAuth } from '../auth.js';
import type { ExternalJwt } from '../externalJwt.js';
import type { Admitter } from '../../doors/door.js';
import type { ClusterAgentsView } from './clusters.js';
import { clusterRoutes } from './clustersApi.js';
import type { ApiRoute } from '../apiRoute.js';
import { KubeRouter } from './kubeRouter.js';

export interface KubeDoorOptions {
  readonly jwt: ExternalJwt | undefined;
  readonly opener: Admitter;
  readonly store: Store;
  readonly tunnels: ClusterAgentsView;
  readonly auth: HubAuth;
  readonly audit: Pick<Audit, 'record'>;
  readonly log: Logger;
}

export interface KubeDoor {
  readonly router: KubeRouter;
  readonly apiRoutes: readonly ApiRoute[];
  /** Answers an upgrade request that is not the kube door's (nothing else on the hub upgrades). */
  rejectUpgrade(socket: Duplex): void;
}

export function createKubeDoor(o: KubeDoorOptions): KubeDoor {
  const router = new KubeRouter({
    opener: o.opener,
    authenticate: (authorization, socket) => o.auth.fromHttp(authorization, socket, 'kube'),
    record: (row, ro) => o.audit.record(row, ro),
    jwt: o.jwt,
    log: o.log.child({ component: 'kube' }),
  });
  return {
    router,
    apiRoutes: clusterRoutes({ store: o.store, tunnels: o.tunnels }),
    rejectUpgrade(socket) {
      const body = JSON.stringify({ code: 'WARREN_E_NOT_FOUND', message: 'nothing here accepts an upgrade; Kubernetes APIs are under /k8s/clusters/NAME/' });
      socket.on('error', () => undefined);
      socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    },
  };
}

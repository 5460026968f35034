/**
 * Assembles the Kubernetes door for the hub's composition root: the cluster stream pools, the
 * router, multikube routing by an external JWT's `ctx` claim (when `--jwt-public-key` is given and
 * --jwt-doors includes kube), and the admin API's cluster listing. hub.ts only routes requests and upgrades to it.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import type { Audit } from '../audit.js';
import type { HubAuth } from '../auth.js';
import type { ExternalJwt } from '../externalJwt.js';
import { ClusterStreams, type KubeTunnelView } from './clusterStreams.js';
import { isKnownCluster } from './clusters.js';
import { clusterRoutes, type ClusterRoute } from './clustersApi.js';
import { KubeRouter } from './kubeRouter.js';

export interface KubeDoorOptions {
  readonly jwt: ExternalJwt | undefined;
  readonly dialTimeoutMs: number;
  readonly store: Store;
  readonly tunnels: KubeTunnelView;
  readonly auth: HubAuth;
  readonly audit: Pick<Audit, 'record'>;
  readonly log: Logger;
}

export interface KubeDoor {
  readonly router: KubeRouter;
  readonly apiRoutes: readonly ClusterRoute[];
  /** Answers an upgrade request that is not the kube door's (nothing else on the hub upgrades). */
  rejectUpgrade(socket: Duplex): void;
  close(): void;
}

export function createKubeDoor(o: KubeDoorOptions): KubeDoor {
  const streams = new ClusterStreams(o.tunnels, o.dialTimeoutMs);
  const router = new KubeRouter({
    streams,
    isKnownCluster: (c) => isKnownCluster(o.store, c),
    listGrants: () => o.store.listGrants(),
    authenticate: (authorization, socket) => o.auth.fromHttp(authorization, socket, 'kube'),
    record: (row) => o.audit.record(row),
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
    close: () => streams.close(),
  };
}

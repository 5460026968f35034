/**
 * The kubeconfig `warren kubeconfig` prints: one context per cluster, each pointing at the hub's kube
 * door, all sharing one user entry with the Warren access token.
 *
 *   clusters:  - name: alpha   cluster: {server: https://HUB/k8s/clusters/alpha, certificate-authority-data: <hub CA>}
 *   users:     - name: warren-dev@HUBHOST   user: {token: …}
 *   contexts:  - name: alpha   context: {cluster: alpha, user: warren-dev@HUBHOST}
 *   current-context: alpha (the first cluster)
 *
 * Context and cluster entries are named after the Warren cluster, so `kubectl --context alpha` and
 * `kubectl config use-context alpha` read naturally; `contextPrefix` keeps them apart when several
 * hubs' kubeconfigs are merged.
 */
import YAML from 'yaml';
import { WarrenError } from '../shared/errors.js';

export interface KubeconfigOptions {
  /** The hub's base URL as clients reach it, e.g. https://hub.example.com:8443 */
  readonly hubUrl: string;
  /** PEM of the CA that signed the hub's serving certificate. */
  readonly caPem: string;
  readonly clusters: readonly string[];
  readonly user: string;
  readonly token: string;
  readonly contextPrefix?: string;
  /** Default namespace for every context. */
  readonly namespace?: string;
}

export function kubeconfigObject(o: KubeconfigOptions): Record<string, unknown> {
  if (o.clusters.length === 0) throw new WarrenError('WARREN_E_USAGE', 'no clusters: give --cluster NAME (repeatable) or --all');
  const base = o.hubUrl.replace(/\/+$/, '');
  const host = new URL(base).host;
  const userName = `warren-${o.user}@${host}`;
  const prefix = o.contextPrefix ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: o.clusters.map((c) => ({
      name: `${prefix}${c}`,
      cluster: { server: `${base}/k8s/clusters/${encodeURIComponent(c)}`, 'certificate-authority-data': Buffer.from(o.caPem).toString('base64') },
    })),
    users: [{ name: userName, user: { token: o.token } }],
    contexts: o.clusters.map((c) => ({
      name: `${prefix}${c}`,
      context: { cluster: `${prefix}${c}`, user: userName, ...(o.namespace ? { namespace: o.namespace } : {}) },
    })),
    'current-context': `${prefix}${o.clusters[0]}`,
    preferences: {},
  };
}

export function kubeconfigYaml(o: KubeconfigOptions): string {
  return YAML.stringify(kubeconfigObject(o), { lineWidth: 0 });
}

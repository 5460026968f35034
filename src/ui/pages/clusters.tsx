/** Clusters: the Kubernetes clusters I may use, and a kubeconfig for them (with my own token). */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, Table, list } from '../components.js';

export interface ClusterRow {
  readonly name: string;
  readonly agents: readonly string[];
  readonly connectedAgents: readonly string[];
  readonly connected: boolean;
  readonly kubeGroups: readonly string[];
}

export const kubeconfigHref = (clusters: readonly string[]) => `/ui/kubeconfig?${clusters.map((c) => `cluster=${encodeURIComponent(c)}`).join('&')}`;

export function Clusters() {
  const [clusters, setClusters] = useState<ClusterRow[]>();
  const [error, setError] = useState<unknown>();
  useEffect(() => void call<ClusterRow[]>('GET', '/api/v1/clusters').then(setClusters, setError), []);
  return (
    <section>
      <ErrorBox error={error} />
      {clusters === undefined ? null : clusters.length === 0 ? (
        <p>No clusters you may use: an agent serves one with --cluster, and an admin grants it.</p>
      ) : (
        <>
          <p>
            <a href={kubeconfigHref(clusters.map((c) => c.name))} download>
              Download kubeconfig for all {clusters.length} clusters
            </a>
          </p>
          <Table caption="Clusters" head={['Cluster', 'Status', 'Agents', 'Kubernetes groups', '']}>
            {clusters.map((c) => (
              <tr key={c.name} data-cluster={c.name}>
                <th scope="row">{c.name}</th>
                <td>
                  <span class={c.connected ? 'badge on' : 'badge off'}>{c.connected ? 'online' : 'offline'}</span>
                </td>
                <td>{list(c.agents)}</td>
                <td>{list(c.kubeGroups)}</td>
                <td>
                  <a href={kubeconfigHref([c.name])} download aria-label={`Download kubeconfig for ${c.name}`}>
                    Kubeconfig
                  </a>
                </td>
              </tr>
            ))}
          </Table>
        </>
      )}
    </section>
  );
}

/**
 * The hub's inventory of Kubernetes clusters: every cluster name an agent serves or last reported
 * serving (`warren agent --kube … --cluster NAME`), with the agents behind it and which are connected.
 * Live tunnels override what the store remembers from an agent's last connection.
 */
import type { Store } from '../../store/store.js';

export interface ClusterAgentsView {
  connected(): Iterable<{ readonly name: string; readonly info: { readonly clusters: readonly string[] } }>;
}

export interface ClusterSummary {
  readonly name: string;
  /** Every registered agent that serves it. */
  readonly agents: string[];
  /** Those with an open tunnel now. */
  readonly connectedAgents: string[];
  readonly connected: boolean;
}

export async function listClusters(store: Pick<Store, 'listAgents'>, live: ClusterAgentsView): Promise<ClusterSummary[]> {
  const liveByName = new Map([...live.connected()].map((t) => [t.name, t.info.clusters]));
  const byCluster = new Map<string, { agents: string[]; connectedAgents: string[] }>();
  const add = (cluster: string, agent: string, isLive: boolean) => {
    const c = byCluster.get(cluster) ?? { agents: [], connectedAgents: [] };
    if (!c.agents.includes(agent)) c.agents.push(agent);
    if (isLive && !c.connectedAgents.includes(agent)) c.connectedAgents.push(agent);
    byCluster.set(cluster, c);
  };
  for (const a of await store.listAgents()) {
    const liveClusters = liveByName.get(a.name);
    for (const c of liveClusters ?? a.meta.clusters ?? []) add(c, a.name, liveClusters !== undefined);
  }
  // An agent connected but not (yet) in the listing still counts.
  for (const [agent, clusters] of liveByName) for (const c of clusters) add(c, agent, true);
  return [...byCluster.entries()]
    .map(([name, c]) => ({ name, agents: c.agents.sort(), connectedAgents: c.connectedAgents.sort(), connected: c.connectedAgents.length > 0 }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Whether any registered agent reported serving `cluster` when it last connected (the slow path: store). */
export async function isKnownCluster(store: Pick<Store, 'listAgents'>, cluster: string): Promise<boolean> {
  return (await store.listAgents()).some((a) => (a.meta.clusters ?? []).includes(cluster));
}

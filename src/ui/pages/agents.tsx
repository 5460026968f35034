/** Agents: live tunnel state (the hub pushes a change event over SSE; the page then reloads the list), delete. */
import { useEffect, useState } from 'preact/hooks';
import { call, request } from '../api.js';
import { ConfirmButton, ErrorBox, Table, list } from '../components.js';
import { shellHref } from './shell.js';

export interface AgentRow {
  readonly name: string;
  readonly connected: boolean;
  readonly labels: Record<string, string>;
  readonly clusters: readonly string[];
  readonly routes: readonly string[];
  readonly version: string | null;
  readonly hostname: string | null;
  readonly rttMs: number | null;
  readonly streamsOpen: number;
  readonly remoteAddress: string | null;
  readonly lastSeen: string | null;
}

/** The agent list, kept current by the hub's change events (GET /ui/events/agents). */
export function useLiveAgents(): { agents: AgentRow[] | undefined; error: unknown; reload: () => void } {
  const [agents, setAgents] = useState<AgentRow[]>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stale = false;
    call<AgentRow[]>('GET', '/api/v1/agents').then(
      (rows) => !stale && (setAgents(rows), setError(undefined)),
      (err: unknown) => !stale && setError(err),
    );
    return () => void (stale = true);
  }, [tick]);
  useEffect(() => {
    const events = new EventSource('/ui/events/agents');
    events.onmessage = () => setTick((t) => t + 1);
    return () => events.close();
  }, []);
  return { agents, error, reload: () => setTick((t) => t + 1) };
}

export function Agents() {
  const { agents, error, reload } = useLiveAgents();
  const [actionError, setActionError] = useState<unknown>();
  const remove = async (name: string) => {
    try {
      await request('DELETE', `/api/v1/agents/${encodeURIComponent(name)}`);
      setActionError(undefined);
    } catch (err) {
      setActionError(err);
    }
    reload();
  };
  return (
    <section>
      <ErrorBox error={error ?? actionError} />
      {agents === undefined ? (
        <p>Loading…</p>
      ) : agents.length === 0 ? (
        <p>No agents yet. Add one on the Add agent page.</p>
      ) : (
        <Table caption="Agents" head={['Name', 'Status', 'RTT', 'Version', 'Labels', 'Routes', 'Clusters', 'Open streams', 'Address', '']}>
          {agents.map((a) => (
            <tr key={a.name} data-agent={a.name}>
              <th scope="row">{a.name}</th>
              <td>
                <span class={a.connected ? 'badge on' : 'badge off'} data-testid="status">
                  {a.connected ? 'online' : 'offline'}
                </span>
              </td>
              <td>{a.rttMs === null ? '—' : `${a.rttMs} ms`}</td>
              <td>{a.version ?? '—'}</td>
              <td>{list(Object.entries(a.labels).map(([k, v]) => `${k}=${v}`))}</td>
              <td>{list(a.routes)}</td>
              <td>{list(a.clusters)}</td>
              <td>{a.streamsOpen}</td>
              <td>{a.remoteAddress ?? (a.lastSeen ? `last seen ${new Date(a.lastSeen).toLocaleString()}` : '—')}</td>
              <td class="actions">
                <a class="button" href={shellHref(`${a.name}:22`)} aria-label={`Open a web shell to ${a.name}`}>
                  Web shell
                </a>
                <ConfirmButton label="Delete" what={`agent ${a.name}`} onConfirm={() => remove(a.name)} />
              </td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}

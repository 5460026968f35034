/** Agents: live tunnel state (the hub pushes a change event over SSE; the page then reloads the list), delete. */
import { useEffect, useState } from 'preact/hooks';
import { call, request } from '../api.js';
import { ConfirmButton, ErrorBox, Table, formatBytes, list } from '../components.js';
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
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly remoteAddress: string | null;
  readonly lastSeen: string | null;
}

/**
 * Admin data kept current by the hub's change events (GET /ui/events/agents: agent connects and
 * disconnects, and a tick every few seconds for RTT, streams and bytes): `load` runs again on each.
 */
export function useLive<T>(load: () => Promise<T>): { data: T | undefined; error: unknown; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stale = false;
    load().then(
      (rows) => !stale && (setData(rows), setError(undefined)),
      (err: unknown) => !stale && setError(err),
    );
    return () => void (stale = true);
  }, [tick]);
  useEffect(() => {
    const events = new EventSource('/ui/events/agents');
    events.onmessage = () => setTick((t) => t + 1);
    return () => events.close();
  }, []);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

/** The agent list, kept current by the hub's change events. */
export function useLiveAgents(): { agents: AgentRow[] | undefined; error: unknown; reload: () => void } {
  const { data, error, reload } = useLive(() => call<AgentRow[]>('GET', '/api/v1/agents'));
  return { agents: data, error, reload };
}

export function Agents() {
  const { agents, error, reload } = useLiveAgents();
  const [actionError, setActionError] = useState<unknown>();
  const remove = (name: string) => request('DELETE', `/api/v1/agents/${encodeURIComponent(name)}`).then(() => (setActionError(undefined), reload()), setActionError);
  return (
    <section>
      <ErrorBox error={error ?? actionError} />
      {agents === undefined ? (
        <p>Loading…</p>
      ) : agents.length === 0 ? (
        <p>No agents yet. Add one on the Add agent page.</p>
      ) : (
        <Table caption="Agents" head={['Name', 'Status', 'RTT', 'Version', 'Labels', 'Routes', 'Clusters', 'Open streams', 'Bytes in/out', 'Address', '']}>
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
              <td data-testid="streams">{a.streamsOpen}</td>
              <td data-testid="bytes">{a.connected ? `${formatBytes(a.bytesIn)} / ${formatBytes(a.bytesOut)}` : '—'}</td>
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

/** Audit: filter the trail and follow it live (the API's NDJSON follow stream). Non-admins see their own rows. */
import { useEffect, useState } from 'preact/hooks';
import { followNdjson } from '../api.js';
import { ErrorBox, Field, Table, formatBytes } from '../components.js';

interface AuditRow {
  readonly id: number;
  readonly time: string;
  readonly kind: string;
  readonly user: string | null;
  readonly door: string | null;
  readonly agent: string | null;
  readonly target: string | null;
  readonly result: string;
  readonly reason: string | null;
  readonly bytesIn: number | null;
  readonly bytesOut: number | null;
}

const MAX_ROWS = 500;

export function Audit() {
  const [user, setUser] = useState('');
  const [agent, setAgent] = useState('');
  const [kind, setKind] = useState('');
  const [since, setSince] = useState('24h');
  const [follow, setFollow] = useState(true);
  const [applied, setApplied] = useState({ user: '', agent: '', kind: '', since: '24h', follow: true });
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [error, setError] = useState<unknown>();

  useEffect(() => {
    const q = new URLSearchParams({ limit: String(MAX_ROWS), follow: String(applied.follow) });
    for (const k of ['user', 'agent', 'kind', 'since'] as const) if (applied[k]) q.set(k, applied[k]);
    const abort = new AbortController();
    setRows([]);
    setError(undefined);
    followNdjson<AuditRow>(`/api/v1/audit?${q}`, abort.signal, (row) => setRows((r) => [row, ...r].slice(0, MAX_ROWS))).catch((err: unknown) => {
      if (!abort.signal.aborted) setError(err);
    });
    return () => abort.abort();
  }, [applied]);

  return (
    <section>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ user: user.trim(), agent: agent.trim(), kind, since: since.trim(), follow });
        }}
      >
        <Field label="User">
          <input name="user" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </Field>
        <Field label="Agent">
          <input name="agent" value={agent} onInput={(e) => setAgent(e.currentTarget.value)} />
        </Field>
        <Field label="Kind">
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="">any</option>
            <option value="stream">stream</option>
            <option value="kube">kube</option>
            <option value="admin">admin</option>
            <option value="agent">agent</option>
            <option value="shell">shell</option>
          </select>
        </Field>
        <Field label="Since" hint="1h, 7d or an ISO time">
          <input name="since" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
        </Field>
        <label class="checkbox">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />
          Follow live
        </label>
        <button type="submit">Apply</button>
      </form>
      <ErrorBox error={error} />
      <Table caption={`Audit (${rows.length} rows${applied.follow ? ', following' : ''})`} head={['Time', 'Kind', 'User', 'Door', 'Agent', 'Target', 'Result', 'Bytes in/out', 'Reason']}>
        {rows.map((r) => (
          <tr key={r.id} data-audit-id={r.id}>
            <td>{new Date(r.time).toLocaleString()}</td>
            <td>{r.kind}</td>
            <td>{r.user ?? '—'}</td>
            <td>{r.door ?? '—'}</td>
            <td>{r.agent ?? '—'}</td>
            <td>{r.target ?? '—'}</td>
            <td>{r.result}</td>
            <td>{r.bytesIn === null ? '—' : `${formatBytes(r.bytesIn)} / ${formatBytes(r.bytesOut ?? 0)}`}</td>
            <td>{r.reason ?? ''}</td>
          </tr>
        ))}
      </Table>
    </section>
  );
}

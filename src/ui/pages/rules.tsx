/**
 * Rules (admins): egress and ingress rules (design §6) with their live state — listening, open streams,
 * connections, bytes, last error — refreshed by the hub's change events; delete.
 */
import { request, call } from '../api.js';
import { ConfirmButton, ErrorBox, Table, formatBytes, list } from '../components.js';
import { useLive } from './agents.js';
import { useState } from 'preact/hooks';

interface RuleRow {
  readonly name: string;
  readonly kind: 'egress' | 'ingress';
  readonly gateway: string | null;
  readonly sourceIp: string | null;
  readonly entry: string;
  readonly address: string | null;
  readonly target: string;
  readonly allowFrom: readonly string[];
  readonly listening: boolean;
  readonly openStreams: number;
  readonly connections: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly lastError: { readonly code: string; readonly message: string } | null;
  readonly owner: string | null;
}

async function loadRules(): Promise<RuleRow[]> {
  const [egress, ingress] = await Promise.all([call<RuleRow[]>('GET', '/api/v1/egress'), call<RuleRow[]>('GET', '/api/v1/ingress')]);
  return [...egress, ...ingress];
}

export function Rules() {
  const { data: rules, error, reload } = useLive(loadRules);
  const [actionError, setActionError] = useState<unknown>();
  const remove = (r: RuleRow) => request('DELETE', `/api/v1/${r.kind}/${encodeURIComponent(r.name)}`).then(() => (setActionError(undefined), reload()), setActionError);
  return (
    <section>
      <p class="note">
        Egress: connections to the entry leave from the gateway's source address. Ingress: the gateway listens on its source address and carries
        connections to a target behind another agent. Create them with <code>warren egress create</code> and <code>warren ingress create</code>.
      </p>
      <ErrorBox error={error ?? actionError} />
      {rules === undefined ? (
        <p>Loading…</p>
      ) : rules.length === 0 ? (
        <p>No egress or ingress rules.</p>
      ) : (
        <Table caption="Egress and ingress rules" head={['Name', 'Kind', 'State', 'Gateway', 'Source IP', 'Entry', 'Target', 'Allow from', 'Open streams', 'Connections', 'Bytes in/out', '']}>
          {rules.map((r) => (
            <tr key={r.name} data-rule={r.name}>
              <th scope="row">{r.name}</th>
              <td>{r.kind}</td>
              <td>
                <span class={r.listening ? 'badge on' : 'badge off'} data-testid="state">
                  {r.listening ? 'listening' : 'not listening'}
                </span>
                {r.lastError ? <small class="error-text"> {`${r.lastError.message} [${r.lastError.code}]`}</small> : null}
              </td>
              <td>{r.gateway ?? '—'}</td>
              <td>{r.sourceIp ?? '—'}</td>
              <td>{r.address ?? r.entry}</td>
              <td>{r.target}</td>
              <td>{list(r.allowFrom)}</td>
              <td>{r.openStreams}</td>
              <td>{r.connections}</td>
              <td>{`${formatBytes(r.bytesIn)} / ${formatBytes(r.bytesOut)}`}</td>
              <td>{r.owner ? <small>managed by {r.owner}</small> : <ConfirmButton label="Delete" what={`${r.kind} rule ${r.name}`} onConfirm={() => remove(r)} />}</td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  );
}

/** Access (admins): users' access tokens and grants. */
import { useEffect, useState } from 'preact/hooks';
import { call, request } from '../api.js';
import { ConfirmButton, CopyLine, ErrorBox, Field, Table, list } from '../components.js';

interface TokenRow {
  readonly id: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly expiresAt: string | null;
  readonly revoked: boolean;
  readonly createdBy: string;
}

interface GrantRow {
  readonly id: string;
  readonly subject: string;
  readonly agent: string | null;
  readonly host: string | null;
  readonly ports: string | null;
  readonly cluster: string | null;
  readonly kubeGroups: readonly string[];
}

const splitList = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

export function AccessPage() {
  const [tokens, setTokens] = useState<TokenRow[]>([]);
  const [grants, setGrants] = useState<GrantRow[]>([]);
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const reload = () => setTick((t) => t + 1);
  useEffect(() => {
    call<TokenRow[]>('GET', '/api/v1/tokens').then(setTokens, setError);
    call<GrantRow[]>('GET', '/api/v1/grants').then(setGrants, setError);
  }, [tick]);

  const [user, setUser] = useState('');
  const [groups, setGroups] = useState('');
  const [ttl, setTtl] = useState('8h');
  const [issued, setIssued] = useState<{ token: string; user: string }>();
  const issue = (e: Event) => {
    e.preventDefault();
    call<{ token: string; user: string }>('POST', '/api/v1/tokens', { user: user.trim(), groups: splitList(groups), ttl }).then((t) => (setIssued(t), setError(undefined), reload()), setError);
  };

  const [kind, setKind] = useState<'user' | 'group'>('user');
  const [subject, setSubject] = useState('');
  const [agent, setAgent] = useState('');
  const [host, setHost] = useState('');
  const [ports, setPorts] = useState('');
  const [cluster, setCluster] = useState('');
  const grant = (e: Event) => {
    e.preventDefault();
    const body = {
      [kind]: subject.trim(),
      ...(agent.trim() ? { agent: agent.trim() } : {}), ...(host.trim() ? { host: host.trim() } : {}),
      ...(ports.trim() ? { ports: ports.trim() } : {}), ...(cluster.trim() ? { cluster: cluster.trim() } : {}),
    };
    call('POST', '/api/v1/grants', body).then(() => (setError(undefined), reload()), setError);
  };
  const remove = (path: string) => request('DELETE', path).then(() => (setError(undefined), reload()), setError);

  return (
    <section>
      <ErrorBox error={error} />
      <h2>Access tokens</h2>
      <form class="inline" onSubmit={issue}>
        <Field label="User">
          <input name="user" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </Field>
        <Field label="Groups" hint="Comma-separated">
          <input name="groups" value={groups} onInput={(e) => setGroups(e.currentTarget.value)} />
        </Field>
        <Field label="Valid for">
          <input name="ttl" value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
        </Field>
        <button type="submit">Issue token</button>
      </form>
      {issued ? (
        <div class="card">
          <p>Token for {issued.user} (shown once):</p>
          <CopyLine label="access token" text={issued.token} />
        </div>
      ) : null}
      <Table caption="Access tokens" head={['Id', 'User', 'Groups', 'Expires', 'State', '']}>
        {tokens.map((t) => (
          <tr key={t.id}>
            <th scope="row">{t.id}</th>
            <td>{t.user}</td>
            <td>{list(t.groups)}</td>
            <td>{t.expiresAt ? new Date(t.expiresAt).toLocaleString() : 'never'}</td>
            <td>{t.revoked ? 'revoked' : 'active'}</td>
            <td>{t.revoked ? null : <ConfirmButton label="Revoke" what={`token ${t.id}`} onConfirm={() => remove(`/api/v1/tokens/${t.id}`)} />}</td>
          </tr>
        ))}
      </Table>

      <h2>Grants</h2>
      <form class="inline" onSubmit={grant}>
        <Field label="Subject kind">
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value === 'group' ? 'group' : 'user')}>
            <option value="user">user</option>
            <option value="group">group</option>
          </select>
        </Field>
        <Field label="Subject">
          <input name="subject" required value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
        </Field>
        <Field label="Agent" hint="Glob; or give a cluster">
          <input name="agent" value={agent} onInput={(e) => setAgent(e.currentTarget.value)} />
        </Field>
        <Field label="Host" hint="Glob or CIDR">
          <input name="host" value={host} onInput={(e) => setHost(e.currentTarget.value)} />
        </Field>
        <Field label="Ports" hint="22,8000-8100">
          <input name="ports" value={ports} onInput={(e) => setPorts(e.currentTarget.value)} />
        </Field>
        <Field label="Cluster">
          <input name="cluster" value={cluster} onInput={(e) => setCluster(e.currentTarget.value)} />
        </Field>
        <button type="submit">Grant</button>
      </form>
      <Table caption="Grants" head={['Id', 'Subject', 'Agent', 'Host', 'Ports', 'Cluster', 'Kubernetes groups', '']}>
        {grants.map((g) => (
          <tr key={g.id}>
            <th scope="row">{g.id}</th>
            <td>{g.subject}</td>
            <td>{g.agent ?? '—'}</td>
            <td>{g.host ?? '—'}</td>
            <td>{g.ports ?? '—'}</td>
            <td>{g.cluster ?? '—'}</td>
            <td>{list(g.kubeGroups)}</td>
            <td>
              <ConfirmButton label="Delete" what={`grant ${g.id}`} onConfirm={() => remove(`/api/v1/grants/${g.id}`)} />
            </td>
          </tr>
        ))}
      </Table>
    </section>
  );
}

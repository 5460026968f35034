/** Add agent: a join token and the command that uses it; or the Kubernetes manifest for a cluster. */
import { useState } from 'preact/hooks';
import { call, download, request } from '../api.js';
import { CopyLine, ErrorBox, Field } from '../components.js';

interface JoinTokenOut {
  readonly token: string;
  readonly id: string;
  readonly expiresAt: string;
  readonly command: string;
}

const splitList = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

export function AddAgent() {
  const [name, setName] = useState('');
  const [clusters, setClusters] = useState('');
  const [routes, setRoutes] = useState('');
  const [uses, setUses] = useState('1');
  const [ttl, setTtl] = useState('1h');
  const [created, setCreated] = useState<JoinTokenOut>();
  const [error, setError] = useState<unknown>();

  const [cluster, setCluster] = useState('');
  const [namespace, setNamespace] = useState('warren-system');
  const [replicas, setReplicas] = useState('2');
  const [manifestError, setManifestError] = useState<unknown>();
  const [manifestDone, setManifestDone] = useState('');

  const createToken = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const body = {
      ttl, uses: Number(uses), clusters: splitList(clusters), routes: splitList(routes), ...(name.trim() ? { name: name.trim() } : {}),
    };
    call<JoinTokenOut>('POST', '/api/v1/join-tokens', body).then(setCreated, setError);
  };

  const createManifest = (e: Event) => {
    e.preventDefault();
    setManifestError(undefined);
    setManifestDone('');
    void (async () => {
      const c = cluster.trim();
      // Restarted pods join again: the token is reusable and long-lived (as `warren agent manifest` makes it).
      const token = await call<JoinTokenOut>('POST', '/api/v1/join-tokens', { ttl: '365d', uses: null, labels: { cluster: c }, clusters: [c] });
      const yaml = await (await request('POST', '/ui/agent-manifest', { cluster: c, joinToken: token.token, namespace: namespace.trim(), replicas: Number(replicas) })).text();
      download(`warren-agent-${c}.yaml`, yaml, 'application/yaml');
      setManifestDone(`Saved warren-agent-${c}.yaml with join token ${token.id}; apply it with kubectl apply -f warren-agent-${c}.yaml`);
    })().catch(setManifestError);
  };

  return (
    <section>
      <h2>Join token and agent command</h2>
      <form class="inline" onSubmit={createToken}>
        <Field label="Agent name" hint="Empty: any free name">
          <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Clusters" hint="Comma-separated">
          <input name="clusters" value={clusters} onInput={(e) => setClusters(e.currentTarget.value)} />
        </Field>
        <Field label="Routes" hint="CIDRs or DNS suffixes, comma-separated">
          <input name="routes" value={routes} onInput={(e) => setRoutes(e.currentTarget.value)} />
        </Field>
        <Field label="Uses">
          <input name="uses" type="number" min="1" value={uses} onInput={(e) => setUses(e.currentTarget.value)} />
        </Field>
        <Field label="Valid for">
          <input name="ttl" value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
        </Field>
        <button type="submit">Create join token</button>
      </form>
      <ErrorBox error={error} />
      {created ? (
        <div class="card">
          <p>
            Join token <strong>{created.id}</strong>, valid until {new Date(created.expiresAt).toLocaleString()}. Run on the machine the agent serves:
          </p>
          <CopyLine label="agent command" text={created.command} />
        </div>
      ) : null}

      <h2>Kubernetes manifest</h2>
      <form class="inline" onSubmit={createManifest}>
        <Field label="Cluster name">
          <input name="cluster" required value={cluster} onInput={(e) => setCluster(e.currentTarget.value)} />
        </Field>
        <Field label="Namespace">
          <input name="namespace" value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
        </Field>
        <Field label="Replicas">
          <input name="replicas" type="number" min="1" value={replicas} onInput={(e) => setReplicas(e.currentTarget.value)} />
        </Field>
        <button type="submit">Download manifest</button>
      </form>
      <ErrorBox error={manifestError} />
      {manifestDone ? <p role="status">{manifestDone}</p> : null}
    </section>
  );
}

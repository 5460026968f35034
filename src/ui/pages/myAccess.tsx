/** My access (every user): what my grants reach, each with a command line to copy. */
import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { CopyLine, ErrorBox, list } from '../components.js';
import { kubeconfigHref, type ClusterRow } from './clusters.js';
import { shellHref } from './shell.js';

interface Target {
  readonly agent: string;
  readonly connected: boolean;
  readonly rttMs: number | null;
  readonly routes: readonly string[];
  readonly hosts: string;
  readonly ports: string;
  readonly grant: string;
}

interface Access {
  readonly user: string;
  readonly groups: readonly string[];
  readonly targets: readonly Target[];
  readonly clusters: readonly ClusterRow[];
}

interface MeOut {
  readonly hub: { readonly url: string; readonly caFingerprint: string };
}

/** The first port a grant's port list allows (`22,80-90` → 22; `*` → the fallback). */
function firstPort(ports: string, fallback: number): number {
  const m = /^\d+/.exec(ports);
  return m ? Number(m[0]) : fallback;
}

function allowsPort(ports: string, port: number): boolean {
  if (ports === '*') return true;
  return ports.split(',').some((p) => {
    const [a, b] = p.split('-').map(Number);
    return a !== undefined && port >= a && port <= (b ?? a);
  });
}

/** A host name the hub routes to the agent: the agent itself, or a host behind it (design §3). */
function hostFor(t: Target): string {
  if (t.hosts === '*' || t.hosts === 'localhost') return t.agent;
  if (/[*?/]/.test(t.hosts)) return `HOST.${t.agent}.warren`;
  return `${t.hosts}.${t.agent}.warren`;
}

export function MyAccess() {
  const [access, setAccess] = useState<Access>();
  const [hub, setHub] = useState<MeOut['hub']>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    call<Access>('GET', '/api/v1/me/access').then(setAccess, setError);
    call<MeOut>('GET', '/api/v1/me').then((m) => setHub(m.hub), setError);
  }, []);
  if (!access || !hub) return <ErrorBox error={error} />;
  const env = `WARREN_HUB=${hub.url} WARREN_CA_FINGERPRINT=${hub.caFingerprint}`;
  return (
    <section>
      <ErrorBox error={error} />
      <p>
        Signed in as <strong>{access.user}</strong>, groups {list(access.groups)}. Command lines below expect <code>warren login</code> (or{' '}
        <code>{env} WARREN_TOKEN=…</code>) and the hub CA in{' '}
        <a href="/api/v1/ca" download="ca.crt">
          ca.crt
        </a>
        .
      </p>
      <h2>Agents and hosts</h2>
      {access.targets.length === 0 ? <p>No grant gives you a host or port yet.</p> : null}
      {access.targets.map((t) => {
        const host = hostFor(t);
        const port = firstPort(t.ports, 80);
        return (
          <div class="card" key={`${t.agent}/${t.grant}`} data-target={t.agent}>
            <p>
              <strong>{t.agent}</strong> <span class={t.connected ? 'badge on' : 'badge off'}>{t.connected ? 'online' : 'offline'}</span> · hosts {t.hosts} · ports{' '}
              {t.ports} · routes {list(t.routes)} · grant {t.grant}
            </p>
            {allowsPort(t.ports, 22) ? (
              <>
                <CopyLine label={`ssh to ${t.agent}`} text={`ssh -o ProxyCommand='warren connect %h:%p' root@${host}`} />
                <a class="button" href={shellHref(`${host}:22`)} aria-label={`Open a web shell to ${host}`}>
                  Web shell
                </a>
              </>
            ) : null}
            <CopyLine
              label={`curl through ${t.agent}`}
              text={`curl -x ${hub.url} --proxy-cacert ca.crt --proxy-header "Proxy-Authorization: Bearer $WARREN_TOKEN" http://${host}:${port}/`}
            />
          </div>
        );
      })}
      <h2>Kubernetes clusters</h2>
      {access.clusters.length === 0 ? <p>No cluster grant.</p> : null}
      {access.clusters.map((c) => (
        <div class="card" key={c.name} data-cluster={c.name}>
          <p>
            <strong>{c.name}</strong> <span class={c.connected ? 'badge on' : 'badge off'}>{c.connected ? 'online' : 'offline'}</span> · Kubernetes groups{' '}
            {list(c.kubeGroups)} ·{' '}
            <a href={kubeconfigHref([c.name])} download>
              kubeconfig
            </a>
          </p>
          <CopyLine label={`kubectl for ${c.name}`} text={`warren kubeconfig --cluster ${c.name} > ${c.name}.kubeconfig && kubectl --kubeconfig ${c.name}.kubeconfig get ns`} />
        </div>
      ))}
    </section>
  );
}

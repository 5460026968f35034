/**
 * `warren agent --identity-secret NAME`: the agent's identity (key, certificate, hub CA, name, join
 * token id) kept in a Kubernetes Secret of the pod's own namespace instead of the data dir, so that a
 * pod that is restarted, rescheduled or replaced by a rollout comes back as the same agent, and no
 * stale "offline" agent is left on the hub.
 *
 * One Secret holds the identities of every replica of a workload, each under its agent's name
 * (`NAME.json`, one JSON document): the workload's Role then names one Secret, whatever the replica
 * count. The agent reaches the API server as its service account (token and CA at the standard paths,
 * through ./credentials.ts) and needs `get` and `update` on that one Secret, plus `create` only when
 * nothing created the Secret beforehand (the manifest and the chart do).
 *
 * Writes are read-modify-write with the Secret's resourceVersion: replicas that save at once do not
 * lose each other's keys (a 409 Conflict re-reads and tries again).
 */
import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import { WarrenError } from '../../shared/errors.js';
import { identityDocument, identityFromDocument, type AgentIdentity, type IdentityStore } from '../identity.js';
import { KubeCredentials } from './credentials.js';

/** Where a pod finds its namespace (beside the service-account token and CA). */
export const POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

const MAX_WRITE_ATTEMPTS = 5;
const REQUEST_TIMEOUT_MS = 15_000;

interface SecretObject {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

interface KubeAnswer {
  status: number;
  body: unknown;
}

/** The key of an agent's identity in the Secret. */
export const identityKey = (agentName: string): string => `${agentName}.json`;

export async function secretIdentityStore(secretName: string, agentName: string): Promise<IdentityStore> {
  const flag = `--identity-secret ${secretName}`;
  let namespace: string;
  try {
    namespace = fs.readFileSync(POD_NAMESPACE_FILE, 'utf8').trim();
  } catch (err) {
    throw new WarrenError('WARREN_E_CONFIG', `${flag}: cannot read the pod's namespace from ${POD_NAMESPACE_FILE} (${(err as Error).message}); is this a pod with a service account token mounted (automountServiceAccountToken: true)? Outside a pod, keep the identity in --data-dir`);
  }
  const creds = await KubeCredentials.load({ kind: 'in-cluster' }).catch((err: unknown) => {
    throw new WarrenError('WARREN_E_CONFIG', `${flag}: ${(err as Error).message.replace(/^--kube in-cluster: /, '')}`);
  });
  const key = identityKey(agentName);
  const where = `Secret ${namespace}/${secretName} (key ${key})`;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(secretName)}`;

  async function request(method: string, urlPath: string, body?: unknown): Promise<KubeAnswer> {
    const c = await creds.current();
    const url = new URL(c.base.pathname.replace(/\/+$/, '') + urlPath, c.base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json', ...(c.authorization ? { authorization: c.authorization } : {}) };
    if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<KubeAnswer>((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: c.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: kept as text for the message
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000}s`)));
      req.on('error', (err) => reject(new WarrenError('WARREN_E_CONFIG', `${flag}: the Kubernetes API at ${c.base.origin} cannot be reached: ${err.message}`)));
      req.end(payload);
    });
  }

  /** A refusal from the API server, as a start-up error that says what to grant or fix. */
  function refused(verb: string, a: KubeAnswer): WarrenError {
    const message = typeof a.body === 'object' && a.body !== null && typeof (a.body as { message?: unknown }).message === 'string'
      ? (a.body as { message: string }).message
      : String(a.body).slice(0, 200);
    const hint = a.status === 403
      ? `: let the pod's service account get, update${verb === 'create' ? ' and create' : ''} that Secret (the Role rendered by \`warren agent manifest\` and the Helm chart does)`
      : a.status === 404 && verb === 'create'
        ? `: does namespace ${namespace} exist?`
        : '';
    return new WarrenError('WARREN_E_CONFIG', `${flag}: cannot ${verb} Secret ${namespace}/${secretName}: ${a.status} ${message}${hint}`);
  }

  async function read(): Promise<SecretObject | undefined> {
    const a = await request('GET', path);
    if (a.status === 404) return undefined;
    if (a.status !== 200 || typeof a.body !== 'object' || a.body === null) throw refused('get', a);
    return a.body;
  }

  async function load(): Promise<AgentIdentity | undefined> {
    const secret = await read();
    const encoded = secret?.data?.[key];
    if (encoded === undefined) return undefined;
    try {
      return identityFromDocument(JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')));
    } catch (err) {
      const detail = err instanceof SyntaxError ? 'not JSON' : (err as Error).message.split('\n')[0]!.slice(0, 200);
      throw new WarrenError(
        'WARREN_E_CONFIG',
        `the agent identity in ${where} is damaged (${detail}): remove that key and restart, and the agent joins again with its join token: kubectl -n ${namespace} patch secret ${secretName} -p '{"data":{"${key}":null}}'`,
      );
    }
  }

  async function save(id: AgentIdentity): Promise<void> {
    const encoded = Buffer.from(JSON.stringify(identityDocument(id))).toString('base64');
    for (let attempt = 1; ; attempt++) {
      const secret = await read();
      const a = secret
        ? await request('PUT', path, { ...secret, data: { ...secret.data, [key]: encoded } })
        : await request('POST', path.replace(/\/[^/]+$/, ''), {
          apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
          metadata: { name: secretName, labels: { 'app.kubernetes.io/name': 'warren', 'app.kubernetes.io/component': 'agent-identity' } },
          data: { [key]: encoded },
        });
      if (a.status === 200 || a.status === 201) return;
      // Another replica wrote (or created) the Secret meanwhile: read it again and merge.
      if (a.status === 409 && attempt < MAX_WRITE_ATTEMPTS) continue;
      throw refused(secret ? 'update' : 'create', a);
    }
  }

  return { where, load, save };
}

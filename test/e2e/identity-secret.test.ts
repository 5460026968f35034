// `warren agent --identity-secret NAME`: in a cluster, one agent identity across pod restarts and
// rollouts. Two "pods" are two agent processes, one after the other, each with a fresh empty data dir
// and its own private mount namespace in which the service-account token, CA and namespace sit at the
// standard path (/var/run/secrets/kubernetes.io/serviceaccount), as the kubelet mounts them.
//
// The API server is the kube-apiserver STAND-IN (test/support/kube/apiserver.ts; there is no
// kube-apiserver on this machine): it answers Secret get/create/update as the real one does (404
// NotFound Status, 409 AlreadyExists/Conflict, resourceVersion) and authorizes with exactly the Role
// `warren agent manifest` renders (get and update of the one identity Secret, by name).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_SERVICE_ACCOUNT, startFakeApiserver, type FakeApiserver } from '../support/kube/apiserver.js';
import { assertCarriesAStream } from '../support/connectClient.js';
import type { AuditRow } from '../support/audit.js';
import { ChildGroup, runOk, waitForExit } from '../support/proc.js';
import { cliJson, joinToken, startAgent, startHub, stopProcess, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';
import { AGENT_NAMES, agentIdentityRoleRules, agentObjects } from '../../src/kube/manifest.js';
import { identityKey } from '../../src/agent/kube/identitySecret.js';

const NAMESPACE = 'warren-system';
const SECRET = AGENT_NAMES.identity;
const AGENT = 'alpha-warren-agent-0';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface AgentRow {
  name: string;
  connected: boolean;
}

describe('agent identity in a Kubernetes Secret (--identity-secret)', () => {
  const procs = new ChildGroup();
  let api: FakeApiserver;
  let hub: HubProc;
  let dir: string;
  let serviceAccount: string;
  let kubeconfig: string;

  /**
   * `node bin/warren.js agent` as in a pod: a private mount namespace with a tmpfs on /run (so on
   * /var/run) holding the service-account files, and the in-cluster environment.
   */
  const podCommand = () => [
    'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    `mount -t tmpfs tmpfs /run && mkdir -p ${SA_DIR} && cp "$0"/* ${SA_DIR}/ && exec "$@"`,
    serviceAccount, process.execPath, WARREN_BIN, 'agent',
  ];
  const podEnv = () => ({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) });
  const secretData = () => (api.getObject('secrets', NAMESPACE, SECRET) as { data?: Record<string, string> } | undefined)?.data ?? {};
  const kubectl = (args: string[], input?: string) =>
    runOk('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache'), '-n', NAMESPACE, ...args], { input, env: { ...process.env, HOME: dir } });

  before(async () => {
    dir = tempDir('identity-secret');
    // Exactly what the manifest's Role grants the agents' service account, in its namespace.
    const [rule] = agentIdentityRoleRules(SECRET);
    api = await startFakeApiserver({
      namespaces: ['default', NAMESPACE],
      extraRules: [{ users: [AGENT_SERVICE_ACCOUNT], apiGroups: rule!.apiGroups, resources: rule!.resources, resourceNames: rule!.resourceNames, verbs: rule!.verbs, namespaces: [NAMESPACE] }],
    });
    serviceAccount = path.join(dir, 'serviceaccount');
    fs.mkdirSync(serviceAccount);
    fs.writeFileSync(path.join(serviceAccount, 'token'), api.tokens.agent!);
    fs.writeFileSync(path.join(serviceAccount, 'ca.crt'), api.caPem);
    fs.writeFileSync(path.join(serviceAccount, 'namespace'), NAMESPACE);
    kubeconfig = path.join(dir, 'admin.kubeconfig');
    fs.writeFileSync(kubeconfig, api.kubeconfig('admin'), { mode: 0o600 });
    // The manifest's identity Secret (empty), applied as `kubectl apply` of the manifest would.
    const secret = agentObjects({ cluster: 'alpha', joinToken: 'unused' }).find((o) => o.kind === 'Secret' && (o.metadata as { name: string }).name === SECRET);
    await kubectl(['apply', '-f', '-'], JSON.stringify(secret));
    hub = await startHub({ group: procs });
  });
  after(async () => {
    await procs.killAll();
    await api?.close();
  });

  it('a replaced pod comes back as the same agent: one agent on the hub, no stale duplicate, streams carried', { timeout: 120_000 }, async () => {
    // One use: a pod that tried to join again would be refused.
    const token = await joinToken(hub, ['--uses', '1']);
    const args = ['--identity-secret', SECRET];
    const first = await startAgent({ group: procs, hub, name: AGENT, token, args, command: podCommand(), env: podEnv(), dataDir: tempDir('pod-1') });
    const stored = secretData()[identityKey(AGENT)];
    assert.ok(stored, `the identity is in Secret ${NAMESPACE}/${SECRET} under ${identityKey(AGENT)}`);
    const identity = JSON.parse(Buffer.from(stored, 'base64').toString()) as { name: string; certPem: string };
    assert.equal(identity.name, AGENT);
    assert.deepEqual(fs.readdirSync(first.dataDir), [], 'nothing in the pod\'s own storage');
    const writes = api.requests.filter((r) => r.resource === 'secrets' && r.user === AGENT_SERVICE_ACCOUNT);
    assert.deepEqual(writes.map((r) => `${r.method} ${r.status}`), ['GET 200', 'GET 200', 'PUT 200'], 'get, then read-modify-write with the resourceVersion');
    await assertCarriesAStream(procs, hub, AGENT);

    // The pod goes away as on a lost node (no goodbye), and its replacement starts from nothing.
    await stopProcess(first.child, 'SIGKILL');
    const second = await startAgent({ group: procs, hub, name: AGENT, token, args, command: podCommand(), env: podEnv(), dataDir: tempDir('pod-2') });
    const agents = await cliJson<AgentRow[]>(hub, ['agents', 'ls']);
    assert.deepEqual(agents.map((a) => [a.name, a.connected]), [[AGENT, true]], 'one agent, connected; no offline duplicate');
    assert.equal(JSON.parse(Buffer.from(secretData()[identityKey(AGENT)]!, 'base64').toString()).certPem, identity.certPem, 'the same certificate');
    const joins = (await cliJson<AuditRow[]>(hub, ['audit', '--kind', 'agent'])).filter((r) => r.agent === AGENT && r.reason === 'joined with a join token');
    assert.equal(joins.length, 1, 'joined once, by the first pod');
    await assertCarriesAStream(procs, hub, AGENT);
    assert.deepEqual(fs.readdirSync(second.dataDir), []);
  });

  it('a damaged identity in the Secret stops the agent with what is wrong and the command that fixes it', { timeout: 60_000 }, async () => {
    const name = 'alpha-warren-agent-1';
    const key = identityKey(name);
    // Valid JSON, but not an identity (e.g. edited by hand): `{"name":"x"}`.
    await kubectl(['patch', 'secret', SECRET, '-p', JSON.stringify({ data: { [key]: Buffer.from('{"name":"x"}').toString('base64') } })]);
    const pod = procs.spawn(podCommand()[0]!, [...podCommand().slice(1), '--name', name, '--identity-secret', SECRET, '--data-dir', tempDir('pod-damaged')], {
      env: { ...process.env, ...podEnv(), WARREN_JOIN_TOKEN: await joinToken(hub) },
    });
    const exit = await waitForExit(pod, 30_000);
    assert.equal(exit.code, 1, exit.stderr);
    const line = exit.stderr.trim().split('\n').at(-1)!;
    assert.match(line, new RegExp(`the agent identity in Secret ${NAMESPACE}/${SECRET} \\(key ${key.replace('.', '\\.')}\\) is damaged \\(.+\\): remove that key and restart`));
    const fix = `kubectl -n ${NAMESPACE} patch secret ${SECRET} -p '{"data":{"${key}":null}}'`;
    assert.ok(line.includes(fix), line);
    assert.match(line, /\[WARREN_E_CONFIG\]$/);
    assert.doesNotMatch(exit.stderr, /\n\s+at /, 'no stack trace');
    // The hint works: with the key removed, the pod joins and stores a good identity.
    await kubectl(['patch', 'secret', SECRET, '-p', `{"data":{"${key}":null}}`]);
    assert.equal(secretData()[key], undefined);
    await startAgent({ group: procs, hub, name, args: ['--identity-secret', SECRET], command: podCommand(), env: podEnv(), dataDir: tempDir('pod-fixed') });
    assert.ok(secretData()[key]);
  });

  it('a Secret the service account may not use is refused with what to grant', { timeout: 60_000 }, async () => {
    const pod = procs.spawn(podCommand()[0]!, [...podCommand().slice(1), '--name', 'beta-0', '--identity-secret', 'other', '--data-dir', tempDir('pod-forbidden')], {
      env: { ...process.env, ...podEnv(), WARREN_JOIN_TOKEN: await joinToken(hub) },
    });
    const exit = await waitForExit(pod, 30_000);
    assert.equal(exit.code, 1, exit.stderr);
    assert.match(
      exit.stderr,
      /--identity-secret other: cannot get Secret warren-system\/other: 403 secrets "other" is forbidden: User "system:serviceaccount:warren-system:warren-agent" cannot get resource "secrets" in API group "" in the namespace "warren-system": let the pod's service account get, update that Secret/,
    );
  });
});

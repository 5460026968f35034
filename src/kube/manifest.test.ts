// The agent manifest: structure and least privilege by assertion, then three independent validators:
//  1. kubernetes-models' JSON schemas (generated from the Kubernetes OpenAPI document): required fields,
//     types and enums of every object;
//  2. strict decoding (unknown fields anywhere, e.g. a typo like readOnlyRootFileSystem), with the field
//     lists of @kubernetes/client-node's generated models, as the apiserver does for fieldValidation=Strict;
//  3. the real kubectl: `apply --dry-run=client -f -` needs a server for discovery and for the GET of each
//     object, so it runs against the kube-apiserver stand-in; then `--dry-run=server` (kubectl sends
//     fieldValidation=Strict, the stand-in decodes strictly as in 2.), a real apply, and a re-apply that
//     must report every object unchanged.
// (`kubectl create --dry-run=client --validate=false -o json` would validate nothing: it only echoes.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, Secret, ServiceAccount } from 'kubernetes-models/v1';
import YAML from 'yaml';
import { DEFAULT_RULES, startFakeApiserver, type FakeApiserver } from '../../test/support/kube/apiserver.js';
import { fieldErrors } from '../../test/support/kube/objects.js';
import { run } from '../../test/support/proc.js';
import { WarrenError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { AGENT_NODE_OPTIONS } from '../shared/nodeFlags.js';
import { AGENT_CLUSTER_ROLE_RULES, agentClusterRoleName, agentManifest, type AgentManifestOptions } from './manifest.js';

const TOKEN = 'wj1.aHR0cHM6Ly9odWIuZXhhbXBsZS5jb206ODQ0Mw.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.3f2a9c01d4e5b6a7.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA';
const BASE: AgentManifestOptions = { cluster: 'alpha', joinToken: TOKEN };

// Parsed YAML, walked freely by the assertions below.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

function parse(yaml: string): Obj[] {
  return YAML.parseAllDocuments(yaml).map((d) => {
    assert.equal(d.errors.length, 0, d.errors.join('; '));
    return d.toJS();
  });
}

const byKind = (docs: Obj[], kind: string): Obj => {
  const o = docs.find((d) => d.kind === kind);
  assert.ok(o, `no ${kind}`);
  return o;
};


describe('agentManifest', () => {
  const docs = parse(agentManifest(BASE));
  const workload = byKind(docs, 'StatefulSet');
  const pod = workload.spec.template.spec;
  const container = pod.containers[0];

  it('is multi-document YAML of the nine objects, in apply order', () => {
    assert.deepEqual(
      docs.map((d) => `${d.apiVersion}/${d.kind}/${d.metadata.name}`),
      [
        'v1/Namespace/warren-system',
        'v1/ServiceAccount/warren-agent',
        'rbac.authorization.k8s.io/v1/ClusterRole/warren-system:warren-agent-impersonator',
        'rbac.authorization.k8s.io/v1/ClusterRoleBinding/warren-system:warren-agent-impersonator',
        'v1/Secret/warren-join-token',
        'v1/Secret/warren-agent-identity',
        'rbac.authorization.k8s.io/v1/Role/warren-agent-identity',
        'rbac.authorization.k8s.io/v1/RoleBinding/warren-agent-identity',
        'apps/v1/StatefulSet/warren-agent',
      ],
    );
    for (const d of docs.filter((x) => ['ServiceAccount', 'Secret', 'Role', 'RoleBinding', 'StatefulSet'].includes(x.kind))) assert.equal(d.metadata.namespace, 'warren-system');
    for (const d of docs.filter((x) => ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(x.kind))) assert.equal(d.metadata.namespace, undefined);
  });

  it('grants the agent `impersonate` on users, groups and serviceaccounts, and nothing else', () => {
    const role = byKind(docs, 'ClusterRole');
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'], verbs: ['impersonate'] }]);
    assert.equal(role.aggregationRule, undefined);
    for (const rule of role.rules as Obj[]) {
      assert.deepEqual(rule.verbs, ['impersonate']);
      assert.equal(rule.nonResourceURLs, undefined);
      assert.ok(!rule.resources.includes('*') && !rule.verbs.includes('*'));
    }
    const binding = byKind(docs, 'ClusterRoleBinding');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: agentClusterRoleName('warren-system') });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'warren-agent', namespace: 'warren-system' }]);
    assert.equal(pod.serviceAccountName, binding.subjects[0].name);
    // The only other rights: get and update of the identity Secret, by name, in its own namespace.
    assert.equal(docs.filter((d) => /Role/.test(d.kind)).length, 4);
    const identity = byKind(docs, 'Role');
    assert.deepEqual(identity.rules, [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['warren-agent-identity'], verbs: ['get', 'update'] }]);
    const identityBinding = byKind(docs, 'RoleBinding');
    assert.deepEqual(identityBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'warren-agent-identity' });
    assert.deepEqual(identityBinding.subjects, binding.subjects);
  });

  it('keeps each replica\'s identity in the identity Secret: pod N is always agent CLUSTER-warren-agent-N', () => {
    // A StatefulSet: one pod per name at any time, the same name after a restart, a move or a rollout.
    assert.deepEqual([workload.spec.podManagementPolicy, workload.spec.updateStrategy], ['Parallel', { type: 'RollingUpdate' }]);
    const command: string[] = container.command;
    const at = (flag: string) => command[command.indexOf(flag) + 1];
    assert.equal(at('--name'), 'alpha-$(POD_NAME)');
    assert.deepEqual(container.env[1], { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    assert.equal(at('--identity-secret'), 'warren-agent-identity');
    const identity = docs.find((d) => d.kind === 'Secret' && d.metadata.name === 'warren-agent-identity');
    assert.deepEqual([identity.type, identity.data, identity.stringData], ['Opaque', undefined, undefined], 'the agents write their own keys');
    assert.ok(!container.command.includes('--data-dir') && !pod.volumes.some((v: Obj) => v.name === 'data'), 'no identity in the pod\'s own storage');
    // Agent names are RFC 1123 labels, the last replica's included.
    assert.throws(() => agentManifest({ ...BASE, cluster: 'c'.repeat(50), replicas: 10 }), /agent names \(c+-warren-agent-9\) must fit in 63 characters/);
  });

  it('gives the stand-in apiserver the same agent grant (so Warren tests run with what the manifest grants)', () => {
    const agentRule = DEFAULT_RULES.find((r) => r.users?.includes('system:serviceaccount:warren-system:warren-agent'));
    assert.deepEqual(
      { apiGroups: agentRule?.apiGroups, resources: agentRule?.resources, verbs: agentRule?.verbs },
      { apiGroups: [...AGENT_CLUSTER_ROLE_RULES[0].apiGroups], resources: [...AGENT_CLUSTER_ROLE_RULES[0].resources], verbs: [...AGENT_CLUSTER_ROLE_RULES[0].verbs] },
    );
  });

  it('keeps the join token in the Secret only, mounted as the file the agent reads', () => {
    const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === 'warren-join-token');
    assert.deepEqual(secret.stringData, { 'join-token': TOKEN });
    const others = docs.filter((d) => d !== secret);
    assert.ok(!JSON.stringify(others).includes(TOKEN), 'the token must not appear outside the Secret (e.g. in the command line)');
    const mount = container.volumeMounts.find((m: Obj) => m.name === 'join-token');
    const volume = pod.volumes.find((v: Obj) => v.name === 'join-token');
    assert.equal(volume.secret.secretName, secret.metadata.name);
    assert.equal(`${mount.mountPath}/${volume.secret.items[0].path}`, '/var/run/warren/join-token');
    assert.equal(mount.readOnly, true);
  });

  it('runs `warren agent` in-cluster with the token file and the identity Secret', () => {
    assert.deepEqual(container.command, [
      'warren', 'agent', '--kube', 'in-cluster', '--cluster', 'alpha', '--name', 'alpha-$(POD_NAME)', '--identity-secret', 'warren-agent-identity',
      '--token-file', '/var/run/warren/join-token',
    ]);
    assert.deepEqual(container.env[0], { name: 'NODE_OPTIONS', value: AGENT_NODE_OPTIONS }, 'the agent runs with its own heap flags');
    assert.equal(container.image, `ghcr.io/warren/warren:${VERSION}`);
    assert.equal(workload.spec.replicas, 2);
    const hub = parse(agentManifest({ ...BASE, hubUrl: 'https://hub.example.com:8443' }));
    assert.deepEqual(byKind(hub, 'StatefulSet').spec.template.spec.containers[0].command.slice(-2), ['--hub', 'https://hub.example.com:8443']);
  });

  it('probes /healthz and /readyz on :8081 and sets requests and limits', () => {
    assert.deepEqual(container.ports, [{ name: 'health', containerPort: 8081, protocol: 'TCP' }]);
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    for (const p of [container.livenessProbe, container.readinessProbe]) assert.equal(p.httpGet.port, 'health');
    for (const k of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(container.resources[k][r], `${k}.${r}`);
  });

  it('meets the "restricted" Pod Security Standard it enforces on its namespace', () => {
    assert.equal(byKind(docs, 'Namespace').metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
    const sc = container.securityContext;
    assert.equal(sc.runAsNonRoot, true);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
    assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.ok(pod.securityContext.runAsUser > 0);
    const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
    for (const v of pod.volumes as Obj[]) assert.ok(Object.keys(v).filter((k) => k !== 'name').every((k) => allowedVolumes.includes(k)), v.name);
  });

  it('selects exactly the pods its template labels', () => {
    for (const [k, v] of Object.entries(workload.spec.selector.matchLabels)) assert.equal(workload.spec.template.metadata.labels[k], v);
    assert.equal(workload.spec.template.metadata.labels['app.kubernetes.io/instance'], 'alpha');
  });

  it('honours namespace, image and replicas', () => {
    const custom = parse(agentManifest({ ...BASE, namespace: 'edge', image: 'registry.local/warren:dev', replicas: 3 }));
    assert.ok(custom.filter((d) => d.metadata.namespace !== undefined).every((d) => d.metadata.namespace === 'edge'));
    assert.equal(byKind(custom, 'Namespace').metadata.name, 'edge');
    assert.equal(byKind(custom, 'ClusterRoleBinding').subjects[0].namespace, 'edge');
    assert.equal(byKind(custom, 'RoleBinding').subjects[0].namespace, 'edge');
    assert.equal(byKind(custom, 'StatefulSet').spec.replicas, 3);
    assert.equal(byKind(custom, 'StatefulSet').spec.template.spec.containers[0].image, 'registry.local/warren:dev');
  });

  it('refuses bad options at once, without echoing the token', () => {
    const cases: [Partial<AgentManifestOptions>, RegExp][] = [
      [{ cluster: 'Alpha_1' }, /cluster "Alpha_1" is not an RFC 1123 label/],
      [{ namespace: 'a.b' }, /namespace "a.b"/],
      [{ replicas: 0 }, /replicas/],
      [{ replicas: 1.5 }, /replicas/],
      [{ hubUrl: 'http://hub:8443' }, /must be https/],
      [{ joinToken: `${TOKEN} x` }, /join token is empty or contains whitespace/],
    ];
    for (const [patch, message] of cases) {
      assert.throws(
        () => agentManifest({ ...BASE, ...patch }),
        (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && message.test(err.message) && !err.message.includes(TOKEN),
        JSON.stringify(patch),
      );
    }
  });

  it('validates against the Kubernetes OpenAPI schemas (kubernetes-models)', () => {
    const models: Record<string, new (o: never) => { validate(): void }> = { Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, Secret, Role, RoleBinding, StatefulSet };
    for (const d of docs) {
      const Model = models[d.kind];
      assert.ok(Model, d.kind);
      assert.doesNotThrow(() => new Model(d as never).validate(), `${d.kind}`);
    }
    // The validator is not a rubber stamp: a StatefulSet without a selector is refused.
    const broken = structuredClone(workload);
    delete broken.spec.selector;
    assert.throws(() => new StatefulSet(broken as never).validate());
  });

  it('decodes strictly: no unknown field anywhere, no value of the wrong type', async () => {
    for (const d of docs) assert.deepEqual(await fieldErrors(d.kind, d).then(({ unknown, wrongType }) => ({ unknown, wrongType })), { unknown: [], wrongType: [] }, d.kind);
    // ...and it catches a typo deep inside.
    const typo = structuredClone(workload);
    typo.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    assert.deepEqual((await fieldErrors('StatefulSet', typo)).unknown, ['spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem']);
  });

  describe('with kubectl against the kube-apiserver stand-in', () => {
    let api: FakeApiserver;
    let dir: string;
    let kubeconfig: string;
    const manifest = agentManifest(BASE);
    const kubectl = (args: string[], input?: string) =>
      run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { input, env: { ...process.env, HOME: dir }, timeoutMs: 30_000 });

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'warren-manifest-'));
      api = await startFakeApiserver();
      kubeconfig = join(dir, 'admin.kubeconfig');
      writeFileSync(kubeconfig, api.kubeconfig('admin'), { mode: 0o600 });
    });
    after(async () => {
      await api?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const lines = (kind: string) => [
      `namespace/warren-system ${kind}`,
      `serviceaccount/warren-agent ${kind}`,
      `clusterrole.rbac.authorization.k8s.io/warren-system:warren-agent-impersonator ${kind}`,
      `clusterrolebinding.rbac.authorization.k8s.io/warren-system:warren-agent-impersonator ${kind}`,
      `secret/warren-join-token ${kind}`,
      `secret/warren-agent-identity ${kind}`,
      `role.rbac.authorization.k8s.io/warren-agent-identity ${kind}`,
      `rolebinding.rbac.authorization.k8s.io/warren-agent-identity ${kind}`,
      `statefulset.apps/warren-agent ${kind}`,
    ];

    it('is accepted by `kubectl apply --dry-run=client -f -`, which creates nothing', async () => {
      const r = await kubectl(['apply', '--dry-run=client', '-f', '-'], manifest);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), lines('created (dry run)'));
      assert.equal(api.getObject('statefulsets', 'warren-system', 'warren-agent'), undefined);
    });

    it('applies with strict field validation, re-applies as unchanged, and passes a server-side dry run', async () => {
      // A server dry run of a fresh install fails on a real cluster too (the namespace does not exist
      // yet), so apply for real first: kubectl sends fieldValidation=Strict on every write.
      const m = api.requests.length;
      const applied = await kubectl(['apply', '-f', '-'], manifest);
      assert.deepEqual(applied.stdout.trim().split('\n'), lines('created'), applied.stderr);
      assert.equal(applied.stderr, '', 'no warnings (unknown fields would be reported here)');
      const posts = api.requests.slice(m).filter((q) => q.method === 'POST');
      assert.equal(posts.length, 9);
      assert.ok(posts.every((q) => /(^|&)fieldValidation=Strict(&|$)/.test(q.query)));
      const rv = api.resourceVersion();
      const again = await kubectl(['apply', '-f', '-'], manifest);
      // stringData is write-only, so kubectl's three-way diff always finds it missing and sends it again
      // (a real cluster says "configured" here too); the object itself does not change.
      assert.deepEqual(again.stdout.trim().split('\n'), lines('unchanged').map((l) => l.replace(/^(secret\/warren-join-token) unchanged$/, '$1 configured')), again.stderr);
      assert.equal(api.resourceVersion(), rv, 're-applying the same manifest wrote nothing');
      const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifest.replace('replicas: 2', 'replicas: 3'));
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /^statefulset\.apps\/warren-agent configured \(server dry run\)$/m);
      assert.equal((api.getObject('statefulsets', 'warren-system', 'warren-agent') as { spec: { replicas: number } }).spec.replicas, 2);
      const secret = api.getObject('secrets', 'warren-system', 'warren-join-token') as { data: Record<string, string> };
      assert.equal(Buffer.from(secret.data['join-token']!, 'base64').toString(), TOKEN, 'stored like the apiserver does: stringData folded into data');
      // The agents' keys in the identity Secret survive a re-apply: they were never in the applied configuration.
      const key = await kubectl(['-n', 'warren-system', 'patch', 'secret', 'warren-agent-identity', '-p', '{"data":{"alpha-warren-agent-0.json":"e30="}}']);
      assert.equal(key.code, 0, key.stderr);
      assert.equal((await kubectl(['apply', '-f', '-'], manifest)).code, 0);
      assert.deepEqual((api.getObject('secrets', 'warren-system', 'warren-agent-identity') as { data: unknown }).data, { 'alpha-warren-agent-0.json': 'e30=' });
      const role = await kubectl(['get', 'clusterrole', 'warren-system:warren-agent-impersonator', '-o', 'json']);
      assert.deepEqual(JSON.parse(role.stdout).rules, [{ apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'], verbs: ['impersonate'] }]);
    });

    it('is refused by strict validation when a field is misspelt (the check above can fail)', async () => {
      const typo = manifest.replace('readOnlyRootFilesystem', 'readOnlyRootFileSystem');
      const r = await kubectl(['apply', '--dry-run=server', '-f', '-'], typo);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /strict decoding error: unknown field "spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFileSystem"/);
    });
  });
});

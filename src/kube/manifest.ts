/**
 * The Kubernetes objects that run Warren agents inside a member cluster, as one multi-document YAML
 * to pipe into `kubectl apply -f -`.
 *
 *   Namespace            warren-system (Pod Security "restricted" enforced: the agent needs nothing more)
 *   ServiceAccount       warren-agent: the identity the agent's in-cluster credentials belong to
 *   ClusterRole          NAMESPACE:warren-agent-impersonator: `impersonate` on users, groups and serviceaccounts, and
 *                        NOTHING else — the agent never acts as itself; every request it forwards carries
 *                        Impersonate-User/Group, so the member cluster's RBAC judges the real caller
 *   ClusterRoleBinding   NAMESPACE:warren-agent-impersonator → the ServiceAccount
 *   Secret               warren-join-token: the join token, mounted at /var/run/warren/join-token
 *   Secret               warren-agent-identity: the agents' identities (key, certificate), one key per
 *                        agent, written by the agents themselves (`--identity-secret`)
 *   Role, RoleBinding    warren-agent-identity: `get` and `update` on that one Secret (resourceNames), and
 *                        nothing else in the namespace
 *   StatefulSet          warren-agent: `replicas` agents (2: a tunnel survives a node or a rollout) with
 *                        health endpoints on :8081. Pod N is agent CLUSTER-warren-agent-N, always: the
 *                        StatefulSet runs at most one pod per name, so a replica that restarts, moves
 *                        or is rolled out loads its identity from the Secret and comes back as the same
 *                        agent, and no two live pods ever hold one identity (with a Deployment, a
 *                        surge pod would, and the hub keeps one tunnel per agent name)
 *
 * Impersonating groups is as strong as the groups the hub asserts (a grant with `--kube-groups
 * system:masters` is cluster-admin); that decision belongs to the hub's grants, which is the point.
 *
 * The join token is used once per replica, on its first start: create it with `--uses` at least the
 * replica count (more, for scaling up later). The token must allow the cluster (`--clusters NAME`),
 * or the hub refuses the agents.
 *
 * @module
 * @example
 *   warren join-token create --clusters alpha --uses 10 -o json | jq -r .token > token
 *   node -e "…agentManifest({ cluster: 'alpha', joinToken })" | kubectl apply -f -
 */
import YAML from 'yaml';
import { WarrenError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { AGENT_NODE_OPTIONS } from '../shared/nodeFlags.js';

export interface AgentManifestOptions {
  /** Warren cluster name (`--cluster`), an RFC 1123 label; also the `app.kubernetes.io/instance` label. */
  cluster: string;
  /** Namespace for every namespaced object; default `warren-system`. */
  namespace?: string;
  /** Default `ghcr.io/warren/warren:<package version>`. */
  image?: string;
  /** The join token (kept in a Secret, passed to the agent as a file). */
  joinToken: string;
  /** Overrides the hub URL the join token carries (`--hub`). */
  hubUrl?: string;
  /** Agents serving this cluster; default 2. */
  replicas?: number;
}

/**
 * Object names, fixed so that docs, RBAC and tests can name them. The ClusterRole and its binding are
 * cluster-wide, so their name carries the namespace: agents installed in two namespaces of one
 * cluster (for two Warren clusters, or two hubs) never share or overwrite each other's. The Helm
 * chart names the same objects after its release (release "warren" renders exactly these).
 */
export const AGENT_NAMES = {
  serviceAccount: 'warren-agent',
  secret: 'warren-join-token',
  /** The Secret of the agents' identities, and the Role and RoleBinding that let them use it. */
  identity: 'warren-agent-identity',
  statefulSet: 'warren-agent',
} as const;

/**
 * The agent name of each pod: `CLUSTER-POD_NAME`, POD_NAME from the downward API (`warren-agent-0`, …).
 * The cluster keeps the names of two clusters' agents apart on one hub.
 */
export const agentNameArg = (cluster: string): string => `${cluster}-$(POD_NAME)`;

/** `NAMESPACE:warren-agent-impersonator`, the ClusterRole and ClusterRoleBinding of the agents in NAMESPACE. */
export const agentClusterRoleName = (namespace: string): string => `${namespace}:warren-agent-impersonator`;

/** Where the pod mounts things; the agent's command line refers to these. */
export const AGENT_PATHS = {
  tokenDir: '/var/run/warren',
  tokenFile: '/var/run/warren/join-token',
} as const;

export const AGENT_HEALTH_PORT = 8081;

/** The only permission the agent's ServiceAccount holds. */
export const AGENT_CLUSTER_ROLE_RULES = [
  { apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'], verbs: ['impersonate'] },
] as const;

/** In its own namespace: read and write its identity Secret, and nothing else (`create` cannot be limited to a name: the manifest creates it). */
export const agentIdentityRoleRules = (secretName: string) => [
  { apiGroups: [''], resources: ['secrets'], resourceNames: [secretName], verbs: ['get', 'update'] },
];

const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** The pod's user: not root, and not a uid that exists in common base images. */
const RUN_AS = 10001;

/** Multi-document YAML of the objects above, in the order `kubectl apply` needs them. */
export function agentManifest(opts: AgentManifestOptions): string {
  return agentObjects(opts)
    .map((o) => YAML.stringify(o, { lineWidth: 0 }))
    .join('---\n')
    .replace(/^/, `# Warren agent for cluster "${opts.cluster}" (warren ${VERSION}). Apply with: kubectl apply -f -\n`);
}

/** The same objects as plain data (what `agentManifest` serialises). */
export function agentObjects(opts: AgentManifestOptions): Record<string, unknown>[] {
  const o = validate(opts);
  const labels = {
    'app.kubernetes.io/name': 'warren',
    'app.kubernetes.io/component': 'agent',
    'app.kubernetes.io/instance': o.cluster,
    'app.kubernetes.io/version': VERSION,
    'app.kubernetes.io/managed-by': 'warren',
  };
  const selector = { 'app.kubernetes.io/name': 'warren', 'app.kubernetes.io/component': 'agent', 'app.kubernetes.io/instance': o.cluster };
  const command = [
    'warren', 'agent',
    '--kube', 'in-cluster',
    '--cluster', o.cluster,
    '--name', agentNameArg(o.cluster),
    '--identity-secret', AGENT_NAMES.identity,
    '--token-file', AGENT_PATHS.tokenFile,
    ...(o.hubUrl ? ['--hub', o.hubUrl] : []),
  ];
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'health', scheme: 'HTTP' },
    periodSeconds,
    timeoutSeconds: 2,
    failureThreshold,
  });

  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: o.namespace,
        labels: {
          'app.kubernetes.io/name': 'warren',
          'app.kubernetes.io/managed-by': 'warren',
          // The agent pod meets the "restricted" Pod Security Standard; enforce it for the whole namespace.
          'pod-security.kubernetes.io/enforce': 'restricted',
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: AGENT_NAMES.serviceAccount, namespace: o.namespace, labels },
      // The agent talks to the API server with this account's token: it must be mounted.
      automountServiceAccountToken: true,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: agentClusterRoleName(o.namespace), labels },
      rules: AGENT_CLUSTER_ROLE_RULES.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: agentClusterRoleName(o.namespace), labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: agentClusterRoleName(o.namespace) },
      subjects: [{ kind: 'ServiceAccount', name: AGENT_NAMES.serviceAccount, namespace: o.namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: AGENT_NAMES.secret, namespace: o.namespace, labels },
      type: 'Opaque',
      // stringData (the apiserver stores it base64 in `data`): the Helm chart, which has no base64
      // function in plain text/template, renders the very same object.
      stringData: { 'join-token': o.joinToken },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      // No data here: each agent adds its own key. `kubectl apply` again keeps them (they were never
      // part of the applied configuration).
      metadata: { name: AGENT_NAMES.identity, namespace: o.namespace, labels },
      type: 'Opaque',
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: AGENT_NAMES.identity, namespace: o.namespace, labels },
      rules: agentIdentityRoleRules(AGENT_NAMES.identity),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: AGENT_NAMES.identity, namespace: o.namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: AGENT_NAMES.identity },
      subjects: [{ kind: 'ServiceAccount', name: AGENT_NAMES.serviceAccount, namespace: o.namespace }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: AGENT_NAMES.statefulSet, namespace: o.namespace, labels },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: selector },
        // Pods start and stop together (no ordering needed); a rollout replaces one pod at a time, so
        // the other replicas keep serving.
        podManagementPolicy: 'Parallel',
        updateStrategy: { type: 'RollingUpdate' },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: AGENT_NAMES.serviceAccount,
            automountServiceAccountToken: true,
            // Time for GOAWAY: in-flight streams finish before the pod is killed.
            terminationGracePeriodSeconds: 30,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: RUN_AS,
              runAsGroup: RUN_AS,
              fsGroup: RUN_AS,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            // Replicas on different nodes, when there are several nodes.
            affinity: {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } } },
                ],
              },
            },
            containers: [
              {
                name: 'agent',
                image: o.image,
                imagePullPolicy: 'IfNotPresent',
                command,
                // The agent's own heap flags (src/shared/nodeFlags.ts): it idles on every cluster. POD_NAME: its agent name.
                env: [{ name: 'NODE_OPTIONS', value: AGENT_NODE_OPTIONS }, { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                ports: [{ name: 'health', containerPort: AGENT_HEALTH_PORT, protocol: 'TCP' }],
                livenessProbe: probe('/healthz', 10, 3),
                readinessProbe: probe('/readyz', 5, 2),
                startupProbe: probe('/healthz', 2, 30),
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { cpu: '1', memory: '256Mi' },
                },
                securityContext: {
                  runAsNonRoot: true,
                  runAsUser: RUN_AS,
                  runAsGroup: RUN_AS,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  privileged: false,
                  capabilities: { drop: ['ALL'] },
                  seccompProfile: { type: 'RuntimeDefault' },
                },
                volumeMounts: [
                  { name: 'join-token', mountPath: AGENT_PATHS.tokenDir, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              {
                name: 'join-token',
                // 0440: readable by the pod's fsGroup, which owns the projected file.
                secret: { secretName: AGENT_NAMES.secret, defaultMode: 0o440, items: [{ key: 'join-token', path: 'join-token' }] },
              },
              { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
            ],
          },
        },
      },
    },
  ];
}

interface ValidOptions {
  cluster: string;
  namespace: string;
  image: string;
  joinToken: string;
  hubUrl: string | undefined;
  replicas: number;
}

function validate(opts: AgentManifestOptions): ValidOptions {
  const bad = (message: string) => new WarrenError('WARREN_E_CONFIG', message);
  const namespace = opts.namespace ?? 'warren-system';
  const replicas = opts.replicas ?? 2;
  if (!RFC1123_LABEL.test(opts.cluster)) throw bad(`cluster "${opts.cluster}" is not an RFC 1123 label (lowercase letters, digits, '-')`);
  if (!RFC1123_LABEL.test(namespace)) throw bad(`namespace "${namespace}" is not an RFC 1123 label`);
  if (!Number.isInteger(replicas) || replicas < 1) throw bad(`replicas must be a whole number of at least 1, not ${replicas}`);
  const lastAgent = agentNameArg(opts.cluster).replace('$(POD_NAME)', `${AGENT_NAMES.statefulSet}-${replicas - 1}`);
  if (lastAgent.length > 63) throw bad(`cluster "${opts.cluster}" is too long: agent names (${lastAgent}) must fit in 63 characters`);
  // Never echo the token: it is a secret.
  if (opts.joinToken.trim() === '' || /\s/.test(opts.joinToken)) throw bad('the join token is empty or contains whitespace');
  if (opts.hubUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(opts.hubUrl);
    } catch {
      throw bad(`hub URL "${opts.hubUrl}" is not a URL`);
    }
    if (url.protocol !== 'https:') throw bad(`hub URL "${opts.hubUrl}" must be https://`);
  }
  const image = opts.image ?? `ghcr.io/warren/warren:${VERSION}`;
  if (image.trim() === '' || /\s/.test(image)) throw bad(`image "${image}" is not an image reference`);
  return { cluster: opts.cluster, namespace, image, joinToken: opts.joinToken, hubUrl: opts.hubUrl, replicas };
}

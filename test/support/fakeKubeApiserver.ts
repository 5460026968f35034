/**
 * A STAND-IN for kube-apiserver (and the kubelet behind it), for Warren's Kubernetes tests.
 *
 * There is no kube-apiserver package on this machine, so this is an honest imitation, narrow in scope, of
 * the paths the real kubectl (v1.32) and `@kubernetes/client-node` use, checked against them by
 * `test/kube-standin.test.ts`. Responses are real Kubernetes JSON (Status errors with the real
 * apiserver's reasons and messages, Tables, watch events, discovery documents).
 *
 * Implemented:
 *   GET  /version, /healthz, /livez, /readyz
 *   GET  /api, /apis                      legacy discovery, or aggregated discovery (apidiscovery.k8s.io/v2,
 *                                         v2beta1) when the Accept header asks for it, as kubectl 1.32 does
 *   GET  /api/v1, /apis/GROUP/VERSION     APIResourceList
 *   GET  /openapi/v3, /openapi/v3/PATH    index + per-group-version documents that only declare the
 *                                         `fieldValidation` query parameter (so kubectl picks server-side
 *                                         validation); /openapi/v2 is 404, which kubectl tolerates (it
 *                                         then computes strategic merge patches from its built-in types)
 *   Resources (namespaces, pods, services, serviceaccounts, secrets, configmaps, persistentvolumeclaims,
 *   apps/v1 deployments, rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles, clusterrolebindings):
 *     list (limit/continue paging, labelSelector, fieldSelector metadata.name/metadata.namespace,
 *           Table output for `Accept: …;as=Table;g=meta.k8s.io`), get, create, update (PUT with
 *           resourceVersion conflict check), delete, deletecollection, and PATCH as
 *           application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json
 *           and server-side apply (application/apply-patch+yaml, fieldManager required, `force` accepted);
 *           `dryRun=All` on every write; watch (`?watch=true`, chunked JSON lines, resourceVersion semantics:
 *           unset/"0" = synthetic ADDED for what exists, N = replay of events after N, too old = 410 in-stream).
 *   POST authentication.k8s.io/v1 selfsubjectreviews, authorization.k8s.io/v1 selfsubjectaccessreviews
 *                                         (`kubectl auth whoami`, `kubectl auth can-i`), from the same RBAC rules
 *   Bodies: JSON, YAML (apply patches), and the protobuf that kubectl's typed generators send (`create
 *     namespace|configmap|secret`, `auth whoami|can-i`): only the fields they send are decoded, anything
 *     else is a 415. Field validation (`fieldValidation` Strict | Warn | Ignore) decodes against the API
 *     types' field lists from @kubernetes/client-node (generated from the real OpenAPI): unknown fields
 *     are refused, warned about (`Warning` header) or dropped, wrong types are 400s, with the apiserver's
 *     messages. Secrets fold `stringData` into `data`.
 *   GET  pods/NAME/log                    `follow`, `tailLines`, `timestamps`, `container`; lines come from
 *                                         `appendLog()`, and a follower receives them as they are appended
 *   pods/NAME/exec, pods/NAME/attach      WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) — what kubectl
 *                                         1.32 uses — and SPDY/3.1 upgrade (`X-Stream-Protocol-Version`
 *                                         v5/v4), kubectl's fallback. Built-in commands: cat (echoes stdin),
 *                                         echo, hostname, true, false, sleep.
 *   pods/NAME/portforward                 WebSocket tunnelling SPDY (`SPDY/3.1+portforward.k8s.io`) — what
 *                                         kubectl 1.32 uses — and the plain SPDY/3.1 upgrade
 *                                         (`portforward.k8s.io`); every pod port forwards to a TCP echo
 *                                         server (or to `portForwardTarget()`).
 *
 * Security model, like the real one: bearer tokens (unknown or missing → 401 Status); impersonation
 * (`Impersonate-User`, repeated `Impersonate-Group`) is honoured only when the authenticated identity
 * may `impersonate` users/groups/serviceaccounts, else 403; a small RBAC evaluator decides every request
 * (rules from the options, not from stored Role objects) and denies with the real message format, e.g.
 *   pods is forbidden: User "dev" cannot list resource "pods" in API group "" at the cluster scope
 * Subresources need their own grant ("pods" does not cover "pods/exec"); exec/attach/portforward need
 * `create` even over a WebSocket GET: older apiservers asked only for `get` there, newer ones also
 * require `create` (AuthorizePodWebsocketUpgradeCreatePermission); the stand-in takes the stricter rule.
 *
 * Deliberate simplifications: HTTP/1.1 only (the real one also speaks h2; Go clients fall back); paging
 * continues from the current state, not a snapshot; a deleted namespace and its contents vanish at once;
 * server-side apply merges like a strategic merge patch and removes what the same manager applied before
 * but no longer applies, without conflict detection; no admission except namespace existence; no
 * controllers (a Deployment creates no pods).
 *
 * Every request is recorded in `requests` (method, path, identity before and after impersonation,
 * headers of interest; never tokens) so tests can assert what the API server saw.
 *
 * @module
 * @example
 *   const api = await startFakeApiserver();
 *   after(() => api.close());
 *   writeFileSync(kc, api.kubeconfig({ token: api.tokens.agent!, as: 'dev' }));
 *   await run('kubectl', ['--kubeconfig', kc, 'get', 'pods', '-n', 'team-a']);
 *   assert.equal(api.requests.at(-1)?.user, 'dev');
 */
import 'reflect-metadata';
import { createHash, randomBytes, randomUUID, timingSafeEqual, webcrypto } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { constants as zconst, inflateSync } from 'node:zlib';
import * as x509 from '@peculiar/x509';
import { WebSocketServer, type WebSocket } from 'ws';
import YAML from 'yaml';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

// ---------------------------------------------------------------------------------------------
// Public types

/** Who a token belongs to. `system:authenticated` is added to every authenticated identity. */
export interface FakeIdentity {
  user: string;
  groups: string[];
}

/**
 * One RBAC grant (a role and its binding folded together). Subjects match by user or group. Without
 * `namespaces` it is cluster-wide (a ClusterRoleBinding); with it, it applies only inside those
 * namespaces (RoleBindings), never at the cluster scope. `'*'` matches anything in a list.
 * Resources name subresources explicitly (`pods/log`); `pods` alone does not cover them.
 */
export interface RbacRule {
  users?: string[];
  groups?: string[];
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  namespaces?: string[];
  nonResourceURLs?: string[];
}

export interface RecordedRequest {
  id: number;
  time: Date;
  method: string;
  /** Path without the query string. */
  path: string;
  /** Query string without the `?`. */
  query: string;
  /** Token holder's user name before impersonation (undefined if authentication failed). */
  authenticatedUser?: string;
  /** Effective user after impersonation. */
  user?: string;
  /** Effective groups after impersonation (including `system:authenticated`). */
  groups: string[];
  impersonatedUser?: string;
  impersonatedGroups: string[];
  /** Kubernetes request attributes (undefined for non-resource paths). */
  verb?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** Response status; 0 while in flight, 101 for an accepted upgrade. */
  status: number;
  /** Negotiated upgrade protocol (WebSocket subprotocol or X-Stream-Protocol-Version). */
  protocol?: string;
  headers: {
    accept?: string;
    contentType?: string;
    userAgent?: string;
    upgrade?: string;
    secWebSocketProtocol?: string;
    xStreamProtocolVersion: string[];
    impersonateUser?: string;
    impersonateGroup: string[];
    /** Authorization scheme only (`Bearer`), never the credential. */
    authorization?: string;
    /** What the API server would write as the client's address in its own audit log. */
    xForwardedFor?: string;
  };
}

export interface PortForwardTarget {
  host: string;
  port: number;
}

export interface FakeApiserverOptions {
  /** Extra token holders (or overrides of the defaults: admin, agent, dev, nobody), by token name. */
  identities?: Record<string, FakeIdentity>;
  /** Replaces the default RBAC rules (see `DEFAULT_RULES`). */
  rules?: RbacRule[];
  /** Added to the default rules. */
  extraRules?: RbacRule[];
  /** Namespaces that exist at start; default: default, kube-system, kube-public, team-a, team-b. */
  namespaces?: string[];
  /** Where a pod's port forwards to; default: the stand-in's own TCP echo server, for every pod and port. */
  portForwardTarget?: (pod: { namespace: string; name: string }, port: number) => PortForwardTarget;
  /** Reported by /version; default v1.32.0. */
  gitVersion?: string;
}

/** Credentials for a generated kubeconfig. */
export interface KubeconfigUser {
  token: string;
  /** kubeconfig `as` (kubectl `--as`): sent as Impersonate-User. */
  as?: string;
  /** kubeconfig `as-groups` (kubectl `--as-group`): sent as repeated Impersonate-Group. */
  asGroups?: string[];
}

export interface KubeconfigOptions {
  namespace?: string;
  /** Server URL; default: this stand-in (pass a Warren hub URL to go through Warren). */
  server?: string;
  /** CA bundle for `server`; default: this stand-in's CA. */
  caPem?: string;
}

export interface FakeApiserver {
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** CA that signed the serving certificate (SANs 127.0.0.1, ::1, localhost). */
  caPem: string;
  /** Token of `kubernetes-admin` (group system:masters). */
  adminToken: string;
  /** Token by name: admin, agent (a service account that may impersonate), dev, nobody, plus `identities`. */
  tokens: Record<string, string>;
  identities: Record<string, FakeIdentity>;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  /** Port of the built-in TCP echo server that pod ports forward to by default. */
  echoPort: number;
  /**
   * A kubeconfig YAML (nothing is written): a token name from `tokens`, or explicit credentials
   * with impersonation (`as`, `as-groups`).
   */
  kubeconfig(user: string | KubeconfigUser, opts?: KubeconfigOptions): string;
  createNamespace(name: string): JsonObject;
  /** Creates a Running pod with one container `main` (port 80) unless `spec` says otherwise. */
  createPod(namespace: string, name: string, spec?: JsonObject): JsonObject;
  /** Current object, or undefined. `resource` is plural, e.g. 'pods' or 'deployments'. */
  getObject(resource: string, namespace: string | undefined, name: string): JsonObject | undefined;
  /** Appends a line to a container's log (default container: the first); followers get it at once. */
  appendLog(namespace: string, pod: string, line: string, container?: string): void;
  /** Current resourceVersion (a counter bumped by every write). */
  resourceVersion(): number;
  /** Ends every connection (watches, logs, upgraded streams) and stops listening. */
  close(): Promise<void>;
}

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

// ---------------------------------------------------------------------------------------------
// Defaults

export const AGENT_SERVICE_ACCOUNT = 'system:serviceaccount:warren-system:warren-agent';

const DEFAULT_IDENTITIES: Record<string, FakeIdentity> = {
  admin: { user: 'kubernetes-admin', groups: ['system:masters'] },
  agent: { user: AGENT_SERVICE_ACCOUNT, groups: ['system:serviceaccounts', 'system:serviceaccounts:warren-system'] },
  dev: { user: 'dev', groups: [] },
  nobody: { user: 'nobody', groups: [] },
};

/** The grants every stand-in starts with, unless `rules` replaces them. */
export const DEFAULT_RULES: readonly RbacRule[] = [
  // cluster-admin
  { groups: ['system:masters', 'cluster-admins'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], nonResourceURLs: ['*'] },
  // what the agent manifest's ClusterRole grants: impersonation and nothing else
  {
    users: [AGENT_SERVICE_ACCOUNT],
    verbs: ['impersonate'],
    apiGroups: [''],
    resources: ['users', 'groups', 'serviceaccounts'],
  },
  // a developer confined to one namespace
  { users: ['dev'], verbs: ['get', 'list', 'watch', 'create', 'delete'], apiGroups: [''], resources: ['pods'], namespaces: ['team-a'] },
  // system:basic-user
  {
    groups: ['system:authenticated'],
    verbs: ['create'],
    apiGroups: ['authentication.k8s.io', 'authorization.k8s.io'],
    resources: ['selfsubjectreviews', 'selfsubjectaccessreviews'],
  },
  // system:discovery + system:public-info-viewer
  {
    groups: ['system:authenticated'],
    verbs: ['get'],
    nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/version', '/version/', '/openapi', '/openapi/*', '/healthz', '/livez', '/readyz'],
  },
];

interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  subresources?: { name: string; kind: string; verbs: string[] }[];
  /** Default: every read/write verb. */
  verbs?: string[];
}

const RW_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const RESOURCES: readonly ResourceDef[] = [
  {
    group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', singular: 'namespace', namespaced: false,
    shortNames: ['ns'], subresources: [{ name: 'status', kind: 'Namespace', verbs: ['get', 'patch', 'update'] }],
  },
  {
    group: '', version: 'v1', resource: 'pods', kind: 'Pod', singular: 'pod', namespaced: true, shortNames: ['po'], categories: ['all'],
    subresources: [
      { name: 'attach', kind: 'PodAttachOptions', verbs: ['create', 'get'] },
      { name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] },
      { name: 'log', kind: 'Pod', verbs: ['get'] },
      { name: 'portforward', kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
      { name: 'status', kind: 'Pod', verbs: ['get', 'patch', 'update'] },
    ],
  },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', singular: 'service', namespaced: true, shortNames: ['svc'], categories: ['all'] },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', singular: 'serviceaccount', namespaced: true, shortNames: ['sa'] },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', singular: 'secret', namespaced: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', singular: 'configmap', namespaced: true, shortNames: ['cm'] },
  {
    group: '', version: 'v1', resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', singular: 'persistentvolumeclaim',
    namespaced: true, shortNames: ['pvc'],
  },
  {
    group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', singular: 'deployment', namespaced: true,
    shortNames: ['deploy'], categories: ['all'],
  },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', kind: 'Role', singular: 'role', namespaced: true },
  // Create-only reviews, answered from the request's identity and the RBAC rules (`kubectl auth whoami|can-i`).
  { group: 'authentication.k8s.io', version: 'v1', resource: 'selfsubjectreviews', kind: 'SelfSubjectReview', singular: 'selfsubjectreview', namespaced: false, verbs: ['create'] },
  {
    group: 'authorization.k8s.io', version: 'v1', resource: 'selfsubjectaccessreviews', kind: 'SelfSubjectAccessReview',
    singular: 'selfsubjectaccessreview', namespaced: false, verbs: ['create'],
  },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', kind: 'RoleBinding', singular: 'rolebinding', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', singular: 'clusterrole', namespaced: false },
  {
    group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding',
    singular: 'clusterrolebinding', namespaced: false,
  },
];

const GROUP_VERSIONS: readonly { group: string; version: string }[] = [
  ...new Map(RESOURCES.map((r) => [`${r.group}/${r.version}`, { group: r.group, version: r.version }])).values(),
];

function apiVersionOf(def: { group: string; version: string }): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

// ---------------------------------------------------------------------------------------------
// Small JSON helpers

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

function metaOf(o: JsonObject): JsonObject {
  if (!isObject(o.metadata)) o.metadata = {};
  return o.metadata;
}

function str(v: Json | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function nowRfc3339(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------
// Errors as Kubernetes Status objects

class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
  ) {
    super(message);
  }

  toStatus(): JsonObject {
    const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason };
    if (this.details) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

function qualified(def: { group: string; resource: string }): string {
  return def.group ? `${def.resource}.${def.group}` : def.resource;
}

function detailsFor(def: { group: string; resource: string }, name?: string): JsonObject {
  const d: JsonObject = {};
  if (name) d.name = name;
  if (def.group) d.group = def.group;
  d.kind = def.resource;
  return d;
}

function notFound(def: { group: string; resource: string }, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${qualified(def)} "${name}" not found`, detailsFor(def, name));
}

const pathNotFound = () => new StatusError(404, 'NotFound', 'the server could not find the requested resource', {});

function badRequest(message: string): StatusError {
  return new StatusError(400, 'BadRequest', message);
}

function invalid(def: ResourceDef, name: string, field: string, detail: string): StatusError {
  return new StatusError(422, 'Invalid', `${def.kind} "${name}" is invalid: ${field}: ${detail}`, {
    ...detailsFor(def, name),
    kind: def.kind,
    causes: [{ reason: 'FieldValueRequired', message: detail, field }],
  });
}

// ---------------------------------------------------------------------------------------------
// Request attributes (k8s.io/apiserver RequestInfoFactory, reduced)

interface RequestInfo {
  isResource: boolean;
  path: string;
  verb: string;
  group: string;
  version: string;
  namespace?: string;
  resource?: string;
  subresource?: string;
  name?: string;
}

function requestInfo(method: string, path: string, query: URLSearchParams): RequestInfo {
  const nonResource: RequestInfo = { isResource: false, path, verb: method.toLowerCase(), group: '', version: '' };
  let parts = path.split('/').filter((p) => p !== '');
  let group = '';
  let version: string;
  if (parts[0] === 'api' && parts.length >= 3) {
    version = parts[1]!;
    parts = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]!;
    version = parts[2]!;
    parts = parts.slice(3);
  } else {
    return nonResource;
  }
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1];
    // /namespaces/NAME/status and /finalize are subresources of the namespace itself.
    if (parts.length > 2 && parts[2] !== 'status' && parts[2] !== 'finalize') parts = parts.slice(2);
  }
  const [resource, rawName, subresource] = parts;
  let name = rawName;
  let verb: string;
  switch (method) {
    case 'GET':
    case 'HEAD':
      verb = name ? 'get' : isTrue(query.get('watch')) ? 'watch' : 'list';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name ? 'delete' : 'deletecollection';
      break;
    default:
      verb = method.toLowerCase();
  }
  // Like the real one: a list/watch narrowed to one name is authorized as that resourceName.
  if (!name && (verb === 'list' || verb === 'watch')) {
    const m = /(?:^|,)metadata\.name==?([^,]+)/.exec(query.get('fieldSelector') ?? '');
    if (m) name = m[1];
  }
  return { isResource: true, path, verb, group, version, namespace, resource, subresource, name };
}

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

// ---------------------------------------------------------------------------------------------
// RBAC and impersonation

function listMatches(list: string[] | undefined, value: string): boolean {
  return list !== undefined && (list.includes('*') || list.includes(value));
}

interface AuthzAttributes {
  user: FakeIdentity;
  verb: string;
  isResource: boolean;
  path: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

function ruleAllows(rule: RbacRule, a: AuthzAttributes): boolean {
  const subject = listMatches(rule.users, a.user.user) || a.user.groups.some((g) => listMatches(rule.groups, g));
  if (!subject || !listMatches(rule.verbs, a.verb)) return false;
  if (!a.isResource) {
    return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
  }
  if (!listMatches(rule.apiGroups ?? ['*'], a.apiGroup)) return false;
  const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resources = rule.resources ?? [];
  const resourceOk =
    resources.includes('*') || resources.includes(full) || (a.subresource !== undefined && resources.includes(`${a.resource}/*`));
  if (!resourceOk) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0 && !(a.name && rule.resourceNames.includes(a.name))) return false;
  if (rule.namespaces !== undefined && !(a.namespace && listMatches(rule.namespaces, a.namespace))) return false;
  return true;
}

/** The real apiserver's wording (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters.forbiddenMessage). */
function forbidden(a: AuthzAttributes): StatusError {
  let reason: string;
  if (!a.isResource) {
    reason = `User "${a.user.user}" cannot ${a.verb} path "${a.path}"`;
    return new StatusError(403, 'Forbidden', `forbidden: ${reason}`, {});
  }
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  reason = a.namespace
    ? `User "${a.user.user}" cannot ${a.verb} resource "${res}" in API group "${a.apiGroup}" in the namespace "${a.namespace}"`
    : `User "${a.user.user}" cannot ${a.verb} resource "${res}" in API group "${a.apiGroup}" at the cluster scope`;
  const gr = { group: a.apiGroup, resource: a.resource };
  const message = a.name ? `${qualified(gr)} "${a.name}" is forbidden: ${reason}` : `${qualified(gr)} is forbidden: ${reason}`;
  return new StatusError(403, 'Forbidden', message, detailsFor(gr, a.name));
}

function withAuthenticated(groups: string[]): string[] {
  if (groups.includes('system:authenticated') || groups.includes('system:unauthenticated')) return [...groups];
  return [...groups, 'system:authenticated'];
}

// ---------------------------------------------------------------------------------------------
// Label and field selectors

type Requirement = (labels: Record<string, string>) => boolean;

function parseLabelSelector(sel: string): Requirement[] {
  const out: Requirement[] = [];
  // Split on commas outside parentheses.
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of sel) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') terms.push(cur);
  for (const raw of terms) {
    const t = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t))) {
      const [, key, op, vals] = m as unknown as [string, string, string, string];
      const set = vals.split(',').map((v) => v.trim());
      out.push(op === 'in' ? (l) => key in l && set.includes(l[key]!) : (l) => !(key in l) || !set.includes(l[key]!));
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(t))) {
      const [, key, op, val] = m as unknown as [string, string, string, string];
      out.push(op === '!=' ? (l) => l[key] !== val : (l) => l[key] === val);
    } else if ((m = /^!([\w./-]+)$/.exec(t))) {
      const key = m[1]!;
      out.push((l) => !(key in l));
    } else if ((m = /^([\w./-]+)$/.exec(t))) {
      const key = m[1]!;
      out.push((l) => key in l);
    } else {
      throw badRequest(`unable to parse requirement: found '${t}', expected: valid label selector`);
    }
  }
  return out;
}

function fieldValue(o: JsonObject, field: string): string | undefined {
  let cur: Json | undefined = o;
  for (const p of field.split('.')) cur = isObject(cur) ? cur[p] : undefined;
  return cur === undefined || cur === null ? undefined : String(cur);
}

function parseFieldSelector(sel: string): ((o: JsonObject) => boolean)[] {
  const out: ((o: JsonObject) => boolean)[] = [];
  for (const t of sel.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw badRequest(`invalid selector: '${t}'; can't understand '${t}'`);
    const [, field, op, val] = m as unknown as [string, string, string, string];
    const supported = ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase'];
    if (!supported.includes(field)) throw badRequest(`"${field}" is not a known field selector: only "${supported.join('", "')}"`);
    out.push(op === '!=' ? (o) => (fieldValue(o, field) ?? '') !== val : (o) => (fieldValue(o, field) ?? '') === val);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Patches

/** RFC 7386 JSON merge patch. */
function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch. */
function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let root: Json = clone(doc);
  const unescape = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
  const split = (p: string) => (p === '' ? [] : p.split('/').slice(1).map(unescape));
  const get = (path: string[]): Json | undefined => {
    let cur: Json | undefined = root;
    for (const seg of path) {
      if (Array.isArray(cur)) cur = cur[Number(seg)];
      else if (isObject(cur)) cur = cur[seg];
      else return undefined;
    }
    return cur;
  };
  const parentOf = (path: string[]): [Json | undefined, string] => [get(path.slice(0, -1)), path[path.length - 1] ?? ''];
  const put = (path: string[], value: Json, insert: boolean) => {
    if (path.length === 0) {
      root = value;
      return;
    }
    const [parent, key] = parentOf(path);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!(i >= 0 && i <= parent.length)) throw new StatusError(422, 'Invalid', `the server rejected our request due to an error in our request`);
      if (insert) parent.splice(i, 0, value);
      else parent[i] = value;
    } else if (isObject(parent)) {
      parent[key] = value;
    } else {
      throw new StatusError(422, 'Invalid', `doc is missing path: "/${path.join('/')}": missing value`);
    }
  };
  const remove = (path: string[]): Json => {
    const [parent, key] = parentOf(path);
    if (Array.isArray(parent) && Number(key) < parent.length) return parent.splice(Number(key), 1)[0]!;
    if (isObject(parent) && key in parent) {
      const v = parent[key]!;
      delete parent[key];
      return v;
    }
    throw new StatusError(422, 'Invalid', `doc is missing path: "/${path.join('/')}": missing value`);
  };
  for (const op of ops) {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw badRequest('invalid json patch operation');
    const path = split(op.path);
    switch (op.op) {
      case 'add':
        put(path, clone(op.value ?? null), true);
        break;
      case 'replace':
        if (get(path) === undefined) throw new StatusError(422, 'Invalid', `doc is missing key: /${path.join('/')}: missing value`);
        put(path, clone(op.value ?? null), false);
        break;
      case 'remove':
        remove(path);
        break;
      case 'test':
        if (JSON.stringify(get(path)) !== JSON.stringify(op.value)) throw new StatusError(422, 'Invalid', `testing value /${path.join('/')} failed: test failed`);
        break;
      case 'move': {
        const v = remove(split(String(op.from)));
        put(path, v, true);
        break;
      }
      case 'copy':
        put(path, clone(get(split(String(op.from))) ?? null), true);
        break;
      default:
        throw badRequest(`Unexpected kind: ${op.op}`);
    }
  }
  return root;
}

/** patchMergeKey of the list fields the stand-in's kinds use (from the Kubernetes API types). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  ownerReferences: 'uid',
  conditions: 'type',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  ephemeralContainerStatuses: 'name',
  containerStatuses: 'name',
  secrets: 'name',
};
/** Lists of scalars whose patchStrategy is merge. */
const MERGED_SCALAR_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, items: Json[]): string | undefined {
  // `ports` is keyed by containerPort in a container and by port in a Service.
  if (field === 'ports') return items.some((i) => isObject(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  return MERGE_KEYS[field];
}

/**
 * Strategic merge patch (what `kubectl apply` sends for built-in kinds): maps merge, `null` deletes,
 * lists with a patchMergeKey merge by key, other lists are replaced; directives `$patch`
 * (replace/delete/merge), `$retainKeys`, `$setElementOrder/F` and `$deleteFromPrimitiveList/F`.
 */
function strategicMerge(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const out = clone(patch);
    delete out.$patch;
    return out;
  }
  if (patch.$patch === 'delete') return null;
  const out: JsonObject = isObject(target) ? clone(target) : {};
  const retainKeys = Array.isArray(patch.$retainKeys) ? patch.$retainKeys.map(String) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const drop = new Set((Array.isArray(v) ? v : []).map((x) => JSON.stringify(x)));
      if (Array.isArray(out[field])) out[field] = out[field].filter((x) => !drop.has(JSON.stringify(x)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    if (Array.isArray(v)) {
      out[k] = mergeList(k, out[k], v);
      continue;
    }
    if (isObject(v)) {
      const merged = strategicMerge(out[k], v);
      if (merged === null) delete out[k];
      else out[k] = merged;
      continue;
    }
    out[k] = v;
  }
  if (retainKeys) for (const k of Object.keys(out)) if (!retainKeys.includes(k)) delete out[k];
  return out;
}

function mergeList(field: string, current: Json | undefined, patch: Json[]): Json[] {
  const cur = Array.isArray(current) ? current : [];
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace')).map((p) => clone(p));
  }
  if (MERGED_SCALAR_LISTS.has(field)) {
    const out = [...cur];
    for (const p of patch) if (!out.some((x) => JSON.stringify(x) === JSON.stringify(p))) out.push(p);
    return out;
  }
  const key = mergeKeyFor(field, [...patch, ...cur]);
  if (!key) return patch.map((p) => clone(p));
  const out: Json[] = cur.map((x) => clone(x));
  for (const p of patch) {
    if (!isObject(p)) continue;
    const idx = out.findIndex((x) => isObject(x) && JSON.stringify(x[key]) === JSON.stringify(p[key]));
    if (p.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = strategicMerge(out[idx], p);
    else out.push(strategicMerge(undefined, p));
  }
  return out;
}

/** Removes from `live` the fields present in `previous` but absent from `next` (one manager's apply). */
function pruneUnapplied(live: Json, previous: Json, next: Json | undefined): Json {
  if (!isObject(live) || !isObject(previous)) return live;
  const out = clone(live);
  for (const [k, v] of Object.entries(previous)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    const n = isObject(next) ? next[k] : undefined;
    if (n === undefined) delete out[k];
    else if (isObject(v) && isObject(out[k])) out[k] = pruneUnapplied(out[k], v, n);
    else if (Array.isArray(v) && Array.isArray(out[k]) && Array.isArray(n)) {
      const key = mergeKeyFor(k, [...v, ...n]);
      if (key) {
        const keep = new Set(n.filter(isObject).map((x) => JSON.stringify(x[key])));
        const dropped = new Set(v.filter(isObject).map((x) => JSON.stringify(x[key])).filter((x) => !keep.has(x)));
        out[k] = out[k].filter((x) => !(isObject(x) && dropped.has(JSON.stringify(x[key]))));
      }
    }
  }
  return out;
}

/** managedFields' FieldsV1 for an applied configuration (lists are treated as atomic). */
function fieldSet(o: Json): JsonObject {
  const out: JsonObject = {};
  if (!isObject(o)) return out;
  for (const [k, v] of Object.entries(o)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    out[`f:${k}`] = isObject(v) ? fieldSet(v) : {};
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Field validation against the Kubernetes API types. @kubernetes/client-node's models are generated
// from the apiserver's OpenAPI document; each class lists its JSON fields and their types, which is
// what strict decoding needs (loaded on first use: most requests never need it).

interface AttributeType {
  name: string;
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): AttributeType[] };
let models: Promise<Record<string, unknown>> | undefined;

/**
 * Unknown fields (paths like `spec.template.spec.containers[0].foo`) and type mismatches of `o`;
 * `prune()` deletes the unknown fields, as decoding into the Go types does.
 */
export async function fieldErrors(kind: string, o: Json): Promise<{ unknown: string[]; wrongType: string[]; prune: () => void }> {
  models ??= import('@kubernetes/client-node') as Promise<Record<string, unknown>>;
  const m = await models;
  const unknown: string[] = [];
  const wrongType: string[] = [];
  const strays: [JsonObject, string][] = [];
  const modelOf = (type: string) => {
    const c = m[type] as Partial<ModelClass> | undefined;
    return typeof c?.getAttributeTypeMap === 'function' ? (c as ModelClass) : undefined;
  };
  const jsonType = (v: Json) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v);
  const mismatch = (v: Json, owner: string, path: string, goType: string) =>
    wrongType.push(`json: cannot unmarshal ${jsonType(v)} into Go struct field ${owner.replace(/^V1/, '')}.${path} of type ${goType}`);
  const walk = (type: string, v: Json, path: string, owner: string) => {
    if (v === null) return; // null means "unset" for every field
    const array = /^Array<(.+)>$/.exec(type);
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (array) {
      if (!Array.isArray(v)) return void mismatch(v, owner, path, `[]${array[1]!.replace(/^V1/, '')}`);
      v.forEach((item, i) => walk(array[1]!, item, `${path}[${i}]`, owner));
      return;
    }
    if (map) {
      if (!isObject(v)) return void mismatch(v, owner, path, `map[string]${map[1]}`);
      for (const [k, item] of Object.entries(v)) walk(map[1]!, item, `${path}[${k}]`, owner);
      return;
    }
    switch (type) {
      case 'any':
        return;
      case 'string':
      case 'Date':
        if (typeof v !== 'string') mismatch(v, owner, path, 'string');
        return;
      case 'number':
        if (typeof v !== 'number') mismatch(v, owner, path, 'int32');
        return;
      case 'boolean':
        if (typeof v !== 'boolean') mismatch(v, owner, path, 'bool');
        return;
      case 'IntOrString':
        if (typeof v !== 'string' && typeof v !== 'number') mismatch(v, owner, path, 'IntOrString');
        return;
    }
    const model = modelOf(type);
    if (!model) return; // a type client-node does not describe: accept, like an unstructured field
    if (!isObject(v)) return void mismatch(v, owner, path, type.replace(/^V1/, ''));
    const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, item] of Object.entries(v)) {
      const child = path ? `${path}.${k}` : k;
      const t = attrs.get(k);
      if (t === undefined) {
        unknown.push(child);
        strays.push([v, k]);
      } else walk(t, item, child, type);
    }
  };
  walk(`V1${kind}`, o, '', `V1${kind}`);
  return { unknown, wrongType, prune: () => strays.forEach(([parent, key]) => delete parent[key]) };
}

// ---------------------------------------------------------------------------------------------
// Tables (server-side printing)

function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

function age(o: JsonObject): string {
  const ts = str(metaOf(o).creationTimestamp);
  return ts ? humanDuration(Date.now() - Date.parse(ts)) : '<unknown>';
}

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
  cell: (o: JsonObject) => Json;
}

const NAME_COLUMN: Column = {
  name: 'Name', type: 'string', format: 'name', priority: 0,
  description: 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  cell: (o) => str(metaOf(o).name) ?? '',
};
const AGE_COLUMN: Column = {
  name: 'Age', type: 'string', format: '', priority: 0,
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata',
  cell: age,
};

function podReady(o: JsonObject): string {
  const spec = isObject(o.spec) ? o.spec : {};
  const status = isObject(o.status) ? o.status : {};
  const total = Array.isArray(spec.containers) ? spec.containers.length : 0;
  const ready = Array.isArray(status.containerStatuses) ? status.containerStatuses.filter((c) => isObject(c) && c.ready === true).length : 0;
  return `${ready}/${total}`;
}

function columnsFor(def: ResourceDef): Column[] {
  const c = (name: string, cell: (o: JsonObject) => Json, priority = 0, description = ''): Column =>
    ({ name, type: 'string', format: '', description, priority, cell });
  switch (def.resource) {
    case 'pods':
      return [
        NAME_COLUMN,
        c('Ready', podReady, 0, 'The aggregate readiness state of this pod for accepting traffic.'),
        c('Status', (o) => (isObject(o.metadata) && o.metadata.deletionTimestamp ? 'Terminating' : str(isObject(o.status) ? o.status.phase : undefined) ?? 'Unknown'), 0, 'The aggregate status of the containers in this pod.'),
        c('Restarts', () => '0', 0, 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
        AGE_COLUMN,
        c('IP', (o) => str(isObject(o.status) ? o.status.podIP : undefined) ?? '<none>', 1, 'The IP address assigned to the pod'),
        c('Node', (o) => str(isObject(o.spec) ? o.spec.nodeName : undefined) ?? '<none>', 1, 'The name of the node assigned to the pod'),
        c('Nominated Node', () => '<none>', 1, 'The name of the node where the pod is nominated to run'),
        c('Readiness Gates', () => '<none>', 1, 'The readiness gates of the pod'),
      ];
    case 'namespaces':
      return [NAME_COLUMN, c('Status', (o) => str(isObject(o.status) ? o.status.phase : undefined) ?? '', 0, 'The status of the namespace'), AGE_COLUMN];
    default:
      return [NAME_COLUMN, AGE_COLUMN];
  }
}

function partialMetadata(o: JsonObject): JsonObject {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: clone(metaOf(o)) };
}

function toTable(def: ResourceDef, items: JsonObject[], listMeta: JsonObject, includeObject: string, withHeaders = true): JsonObject {
  const cols = columnsFor(def);
  const rows = items.map((o) => {
    const row: JsonObject = { cells: cols.map((c) => c.cell(o)) };
    if (includeObject === 'Object') row.object = o;
    else if (includeObject !== 'None') row.object = partialMetadata(o);
    return row;
  });
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withHeaders
      ? cols.map((c) => ({ name: c.name, type: c.type, format: c.format, description: c.description, priority: c.priority }))
      : [],
    rows,
  };
}

function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((a) => /as=Table/.test(a) && /g=meta\.k8s\.io/.test(a));
}

// ---------------------------------------------------------------------------------------------
// Discovery and OpenAPI documents

function apiResource(def: ResourceDef): JsonObject {
  const r: JsonObject = { name: def.resource, singularName: def.singular, namespaced: def.namespaced, kind: def.kind, verbs: def.verbs ?? RW_VERBS };
  if (def.shortNames) r.shortNames = def.shortNames;
  if (def.categories) r.categories = def.categories;
  r.storageVersionHash = createHash('sha256').update(`${def.group}/${def.version}/${def.kind}`).digest('base64').slice(0, 11);
  return r;
}

function apiResourceList(group: string, version: string): JsonObject {
  const resources: Json[] = [];
  for (const def of RESOURCES.filter((r) => r.group === group && r.version === version)) {
    resources.push(apiResource(def));
    for (const sub of def.subresources ?? []) {
      resources.push({ name: `${def.resource}/${sub.name}`, singularName: '', namespaced: def.namespaced, kind: sub.kind, verbs: sub.verbs });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf({ group, version }), resources };
}

function discoveryGroup(group: string): JsonObject {
  const versions = GROUP_VERSIONS.filter((gv) => gv.group === group).map((gv) => ({
    version: gv.version,
    resources: RESOURCES.filter((r) => r.group === group && r.version === gv.version).map((def) => {
      const r: JsonObject = {
        resource: def.resource,
        responseKind: { group: def.group, version: def.version, kind: def.kind },
        scope: def.namespaced ? 'Namespaced' : 'Cluster',
        singularResource: def.singular,
        verbs: def.verbs ?? RW_VERBS,
      };
      if (def.shortNames) r.shortNames = def.shortNames;
      if (def.categories) r.categories = def.categories;
      if (def.subresources) {
        r.subresources = def.subresources.map((s) => ({
          subresource: s.name,
          responseKind: { group: def.group, version: def.version, kind: s.kind },
          verbs: s.verbs,
        }));
      }
      return r;
    }),
    freshness: 'Current',
  }));
  const metadata: JsonObject = group ? { name: group, creationTimestamp: null } : { creationTimestamp: null };
  return { metadata, versions };
}

/** Which aggregated discovery version the Accept header asks for, if any. */
function aggregatedDiscoveryVersion(accept: string | undefined): string | undefined {
  for (const part of (accept ?? '').split(',')) {
    const m = /g=apidiscovery\.k8s\.io;\s*v=(v2|v2beta1);\s*as=APIGroupDiscoveryList/.exec(part.replace(/\s+/g, ''));
    if (m) return m[1];
  }
  return undefined;
}

function openapiPathFor(gv: { group: string; version: string }): string {
  return gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`;
}

/**
 * A per-group-version OpenAPI v3 document that holds no schemas, only PATCH operations declaring the
 * `fieldValidation` parameter. kubectl's validation looks for exactly that to decide the server
 * validates (then it sends `fieldValidation=Strict` and needs no schema of its own).
 */
function openapiDocument(gv: { group: string; version: string }): JsonObject {
  const paths: JsonObject = {};
  const param = { name: 'fieldValidation', in: 'query', description: 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.', schema: { type: 'string', uniqueItems: true } };
  for (const def of RESOURCES.filter((r) => r.group === gv.group && r.version === gv.version)) {
    const base = `/${openapiPathFor(gv)}${def.namespaced ? '/namespaces/{namespace}' : ''}/${def.resource}`;
    const gvk = { group: def.group, version: def.version, kind: def.kind };
    const op = (verb: string): JsonObject => ({
      operationId: `${verb}${def.kind}`,
      parameters: [param],
      responses: { '200': { description: 'OK' } },
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': gvk,
    });
    paths[`${base}/{name}`] = { patch: op('patch'), put: op('put') };
    paths[base] = { post: op('post') };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (stand-in)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

// ---------------------------------------------------------------------------------------------
// The store

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  def: ResourceDef;
  object: JsonObject;
}

const EVENT_HISTORY = 2000;

class Store {
  rv = 1;
  private readonly data = new Map<ResourceDef, Map<string, JsonObject>>();
  /** Last applied configuration per object and field manager (server-side apply). */
  readonly applied = new Map<string, Map<string, JsonObject>>();
  readonly events: WatchEvent[] = [];
  readonly watchers = new Set<(e: WatchEvent) => void>();
  readonly logs = new Map<string, string[]>();
  readonly logFollowers = new Map<string, Set<(line: string) => void>>();
  readonly podGone = new Map<string, Set<() => void>>();

  constructor() {
    for (const def of RESOURCES) this.data.set(def, new Map());
  }

  private table(def: ResourceDef): Map<string, JsonObject> {
    return this.data.get(def)!;
  }

  static key(namespace: string | undefined, name: string): string {
    return namespace ? `${namespace}/${name}` : name;
  }

  get(def: ResourceDef, namespace: string | undefined, name: string): JsonObject | undefined {
    return this.table(def).get(Store.key(namespace, name));
  }

  /** Sorted by namespace/name, like etcd keys. */
  list(def: ResourceDef, namespace: string | undefined): JsonObject[] {
    const all = [...this.table(def).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return all.filter(([, o]) => !namespace || metaOf(o).namespace === namespace).map(([, o]) => o);
  }

  private emit(type: WatchEvent['type'], def: ResourceDef, object: JsonObject): void {
    const e: WatchEvent = { rv: this.rv, type, def, object: clone(object) };
    this.events.push(e);
    if (this.events.length > EVENT_HISTORY) this.events.shift();
    for (const w of [...this.watchers]) w(e);
  }

  put(def: ResourceDef, o: JsonObject, type: 'ADDED' | 'MODIFIED'): JsonObject {
    this.rv++;
    const m = metaOf(o);
    m.resourceVersion = String(this.rv);
    this.table(def).set(Store.key(str(m.namespace), str(m.name)!), o);
    this.emit(type, def, o);
    return o;
  }

  delete(def: ResourceDef, namespace: string | undefined, name: string): JsonObject | undefined {
    const key = Store.key(namespace, name);
    const o = this.table(def).get(key);
    if (!o) return undefined;
    this.table(def).delete(key);
    this.applied.delete(`${def.group}/${def.resource}/${key}`);
    this.rv++;
    const m = metaOf(o);
    m.resourceVersion = String(this.rv);
    if (def.resource === 'pods' || def.resource === 'namespaces') {
      m.deletionTimestamp = nowRfc3339();
      m.deletionGracePeriodSeconds = 0;
    }
    this.emit('DELETED', def, o);
    if (def.resource === 'pods') {
      for (const done of this.podGone.get(key) ?? []) done();
      this.podGone.delete(key);
      for (const k of [...this.logs.keys()]) if (k.startsWith(`${key}/`)) this.logs.delete(k);
    }
    if (def.resource === 'namespaces') {
      for (const d of RESOURCES) if (d.namespaced) for (const child of this.list(d, name)) this.delete(d, name, str(metaOf(child).name)!);
    }
    return o;
  }
}

// ---------------------------------------------------------------------------------------------
// Object defaults (what admission and the kubelet would fill in)

let ipCounter = 10;

function defaultObject(def: ResourceDef, o: JsonObject): void {
  const m = metaOf(o);
  m.uid = randomUUID();
  m.creationTimestamp = nowRfc3339();
  if (def.resource === 'deployments') m.generation = 1;
  if (def.resource === 'namespaces') {
    o.spec = isObject(o.spec) ? o.spec : {};
    o.spec.finalizers = ['kubernetes'];
    o.status = { phase: 'Active' };
    m.labels = { ...(isObject(m.labels) ? m.labels : {}), 'kubernetes.io/metadata.name': str(m.name)! };
  }
  if (def.resource === 'services') {
    const spec = isObject(o.spec) ? o.spec : (o.spec = {});
    spec.type ??= 'ClusterIP';
    spec.clusterIP ??= `10.96.0.${ipCounter++ % 250}`;
  }
  if (def.resource === 'serviceaccounts' || def.resource === 'configmaps') return;
  if (def.resource === 'secrets') return foldStringData(o);
  if (def.resource === 'pods') {
    const spec = isObject(o.spec) ? o.spec : (o.spec = {});
    spec.nodeName ??= 'fake-node';
    spec.restartPolicy ??= 'Always';
    spec.terminationGracePeriodSeconds ??= 30;
    spec.dnsPolicy ??= 'ClusterFirst';
    const containers = Array.isArray(spec.containers) ? spec.containers.filter(isObject) : [];
    const started = nowRfc3339();
    o.status = {
      phase: 'Running',
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: started })),
      hostIP: '10.0.0.1',
      podIP: `10.244.0.${ipCounter++ % 250}`,
      startTime: started,
      containerStatuses: containers.map((c) => ({
        name: str(c.name) ?? '',
        ready: true,
        restartCount: 0,
        started: true,
        image: str(c.image) ?? '',
        imageID: '',
        containerID: `containerd://${randomBytes(32).toString('hex')}`,
        state: { running: { startedAt: started } },
        lastState: {},
      })),
      qosClass: 'BestEffort',
    };
  }
}

/** A Secret's write-only `stringData` is merged into `data` (base64) and never stored. */
function foldStringData(o: JsonObject): void {
  o.type ??= 'Opaque';
  if (!isObject(o.stringData)) return;
  const data = isObject(o.data) ? o.data : {};
  for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  o.data = data;
  delete o.stringData;
}

function generateNameSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from(randomBytes(5), (b) => alphabet[b % alphabet.length]).join('');
}

// ---------------------------------------------------------------------------------------------
// SPDY/3.1 (the subset Kubernetes uses: client-initiated streams, no server push, no flow control —
// moby/spdystream, kubectl's implementation, does not implement SPDY flow control either).

function spdyDictionary(): Buffer {
  const words = [
    ...'options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age allow authorization cache-control connection content-base content-encoding content-language content-length content-location content-md5 content-range content-type date etag expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate method get status'.split(' '),
    '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts = words.map((w) => {
    const b = Buffer.alloc(4 + w.length);
    b.writeUInt32BE(w.length);
    b.write(w, 4, 'latin1');
    return b;
  });
  return Buffer.concat([...parts, Buffer.from(tail, 'latin1')]);
}

/** The SPDY/3 header-compression dictionary (draft 3, §2.6.10.1): 1423 bytes. */
export const SPDY_DICTIONARY = spdyDictionary();

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const SPDY = { SYN_STREAM: 1, SYN_REPLY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, HEADERS: 8, WINDOW_UPDATE: 9 } as const;
const FLAG_FIN = 0x01;

class SpdyStream {
  readonly headers: Record<string, string>;
  private remoteFin = false;
  private localFin = false;
  onData: (b: Buffer) => void = () => {};
  onEnd: () => void = () => {};
  onReset: () => void = () => {};

  constructor(
    readonly id: number,
    headers: Record<string, string>,
    private readonly session: SpdySession,
  ) {
    this.headers = headers;
  }

  write(data: Buffer): void {
    if (this.localFin || this.session.closed) return;
    for (let off = 0; off < data.length; off += 32 * 1024) this.session.writeData(this.id, data.subarray(off, off + 32 * 1024), false);
  }

  end(data?: Buffer): void {
    if (data && data.length > 0) this.write(data);
    if (this.localFin || this.session.closed) return;
    this.localFin = true;
    this.session.writeData(this.id, Buffer.alloc(0), true);
    this.maybeDone();
  }

  reset(): void {
    this.localFin = true;
    this.remoteFin = true;
    this.session.writeControl(SPDY.RST_STREAM, 0, u32(this.id, 5 /* CANCEL */));
    this.session.streams.delete(this.id);
  }

  /** @internal */
  receive(data: Buffer, fin: boolean): void {
    if (data.length > 0) this.onData(data);
    if (fin && !this.remoteFin) {
      this.remoteFin = true;
      this.onEnd();
      this.maybeDone();
    }
  }

  /** @internal */
  receiveReset(): void {
    this.remoteFin = true;
    this.localFin = true;
    this.onReset();
  }

  private maybeDone(): void {
    if (this.localFin && this.remoteFin) this.session.streams.delete(this.id);
  }
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

/**
 * Server side of a SPDY/3.1 session over any byte transport (an upgraded socket, or WebSocket
 * messages when SPDY is tunnelled). Header blocks from the peer are inflated with the shared
 * dictionary; ours are written as zlib *stored* blocks, which every inflater accepts and which keep
 * our side synchronous.
 */
class SpdySession {
  readonly streams = new Map<number, SpdyStream>();
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private compressedIn: Buffer = Buffer.alloc(0);
  private inflatedLen = 0;
  private deflateStarted = false;
  private lastStreamId = 0;

  constructor(
    private readonly send: (b: Buffer) => void,
    private readonly onStream: (s: SpdyStream) => void,
    private readonly onClose: () => void,
  ) {}

  feed(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 8) {
      const length = this.buf.readUInt32BE(4) & 0xffffff;
      if (this.buf.length < 8 + length) return;
      const frame = this.buf.subarray(0, 8 + length);
      this.buf = this.buf.subarray(8 + length);
      this.handleFrame(frame);
      if (this.closed) return;
    }
  }

  private handleFrame(frame: Buffer): void {
    const flags = frame[4]!;
    const payload = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const id = frame.readUInt32BE(0) & 0x7fffffff;
      this.streams.get(id)?.receive(payload, (flags & FLAG_FIN) !== 0);
      return;
    }
    const version = frame.readUInt16BE(0) & 0x7fff;
    const type = frame.readUInt16BE(2);
    if (version !== 3) {
      this.close();
      return;
    }
    switch (type) {
      case SPDY.SYN_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = this.inflateHeaders(payload.subarray(10));
        this.lastStreamId = Math.max(this.lastStreamId, id);
        const stream = new SpdyStream(id, headers, this);
        this.streams.set(id, stream);
        // spdystream drops data on a stream until its SYN_REPLY arrives: reply before anything else.
        this.writeControl(SPDY.SYN_REPLY, 0, Buffer.concat([u32(id), this.deflateHeaders({})]));
        this.onStream(stream);
        if ((flags & FLAG_FIN) !== 0) stream.receive(Buffer.alloc(0), true);
        break;
      }
      case SPDY.HEADERS:
        this.inflateHeaders(payload.subarray(4)); // keep the shared zlib context in step
        break;
      case SPDY.RST_STREAM: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const s = this.streams.get(id);
        this.streams.delete(id);
        s?.receiveReset();
        break;
      }
      case SPDY.PING:
        // Client-initiated pings have odd ids: echo them.
        if ((payload.readUInt32BE(0) & 1) === 1) this.writeControl(SPDY.PING, 0, payload.subarray(0, 4));
        break;
      case SPDY.GOAWAY:
        this.close();
        break;
      default:
        break; // SETTINGS, WINDOW_UPDATE: nothing to do without flow control
    }
  }

  private inflateHeaders(block: Buffer): Record<string, string> {
    // One zlib stream per direction for the whole session: inflate everything so far and take the new
    // tail (header blocks are few and small, so re-inflating is cheap and keeps this synchronous).
    this.compressedIn = Buffer.concat([this.compressedIn, block]);
    const all = inflateSync(this.compressedIn, { dictionary: SPDY_DICTIONARY, finishFlush: zconst.Z_SYNC_FLUSH });
    const raw = all.subarray(this.inflatedLen);
    this.inflatedLen = all.length;
    const headers: Record<string, string> = {};
    let off = 4;
    const n = raw.readUInt32BE(0);
    for (let i = 0; i < n; i++) {
      const nl = raw.readUInt32BE(off);
      const name = raw.toString('latin1', off + 4, off + 4 + nl);
      off += 4 + nl;
      const vl = raw.readUInt32BE(off);
      const value = raw.toString('latin1', off + 4, off + 4 + vl);
      off += 4 + vl;
      headers[name.toLowerCase()] = value;
    }
    return headers;
  }

  private deflateHeaders(headers: Record<string, string>): Buffer {
    const parts: Buffer[] = [u32(Object.keys(headers).length)];
    for (const [k, v] of Object.entries(headers)) {
      parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
    }
    const raw = Buffer.concat(parts);
    const out: Buffer[] = [];
    if (!this.deflateStarted) {
      this.deflateStarted = true;
      // zlib header: deflate, 32K window, FDICT set (0x7820 % 31 === 0), then the dictionary's adler32.
      out.push(Buffer.from([0x78, 0x20]), u32(adler32(SPDY_DICTIONARY)));
    }
    for (let off = 0; off < raw.length; off += 0xffff) {
      const chunk = raw.subarray(off, off + 0xffff);
      const hdr = Buffer.alloc(5);
      hdr[0] = 0x00; // BFINAL=0, BTYPE=00 (stored)
      hdr.writeUInt16LE(chunk.length, 1);
      hdr.writeUInt16LE(~chunk.length & 0xffff, 3);
      out.push(hdr, chunk);
    }
    // What Z_SYNC_FLUSH emits: an empty stored block. Go's inflater hands out a stored block's bytes
    // only when it reaches the next block header, so without this marker the headers never arrive.
    out.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(out);
  }

  writeControl(type: number, flags: number, payload: Buffer): void {
    if (this.closed) return;
    const h = Buffer.alloc(8);
    h.writeUInt16BE(0x8003, 0);
    h.writeUInt16BE(type, 2);
    h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
    this.send(Buffer.concat([h, payload]));
  }

  writeData(id: number, data: Buffer, fin: boolean): void {
    if (this.closed) return;
    const h = Buffer.alloc(8);
    h.writeUInt32BE(id & 0x7fffffff, 0);
    h.writeUInt32BE((((fin ? FLAG_FIN : 0) & 0xff) << 24) | data.length, 4);
    this.send(Buffer.concat([h, data]));
  }

  /** Sends GOAWAY and tells the transport to finish. */
  goAway(): void {
    this.writeControl(SPDY.GOAWAY, 0, u32(this.lastStreamId, 0));
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.receiveReset();
    this.streams.clear();
    this.onClose();
  }
}

// ---------------------------------------------------------------------------------------------
// Remote command (exec/attach): one interface over WebSocket channels and SPDY streams

interface ExecIO {
  stdout(b: Buffer): void;
  stderr(b: Buffer): void;
  /** Registers stdin handlers; `end` runs when the client closes stdin. */
  stdin(data: (b: Buffer) => void, end: () => void): void;
  /** Sends the final Status on the error channel and closes. */
  finish(status: JsonObject): void;
  /** Runs when the client goes away. */
  onClose(cb: () => void): void;
}

const SUCCESS: JsonObject = { metadata: {}, status: 'Success' };

function exitStatus(command: string[], code: number): JsonObject {
  if (code === 0) return SUCCESS;
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** The fake container runtime: a handful of commands, enough to prove the byte paths. */
function runCommand(command: string[], hasStdin: boolean, io: ExecIO, pod: { name: string }): void {
  const [cmd, ...args] = command;
  let done = false;
  const finish = (code: number) => {
    if (done) return;
    done = true;
    io.finish(exitStatus(command, code));
  };
  switch (cmd) {
    case 'cat':
      if (!hasStdin) return finish(0);
      io.stdin((b) => io.stdout(b), () => finish(0));
      return;
    case 'echo':
      io.stdout(Buffer.from(`${args.join(' ')}\n`));
      return finish(0);
    case 'hostname':
      io.stdout(Buffer.from(`${pod.name}\n`));
      return finish(0);
    case 'true':
      return finish(0);
    case 'false':
      return finish(1);
    case 'sleep': {
      const t = setTimeout(() => finish(0), Number(args[0] ?? 0) * 1000);
      io.onClose(() => clearTimeout(t));
      return;
    }
    default:
      io.stderr(Buffer.from(`sh: ${cmd ?? ''}: not found\n`));
      return finish(127);
  }
}

const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const PORTFORWARD_WS_TUNNEL = 'SPDY/3.1+portforward.k8s.io';
const PORTFORWARD_SPDY = 'portforward.k8s.io';
const TUNNEL_ALIAS = 'x-warren-standin-spdy-tunnel';

// ---------------------------------------------------------------------------------------------
// Protobuf request bodies. kubectl's typed generators (`create namespace|configmap|secret`, `run`)
// POST `application/vnd.kubernetes.protobuf`: the envelope "k8s\0" + runtime.Unknown{typeMeta, raw}.
// Only the fields those commands send are decoded; any other non-empty field is refused (415), so a
// test never silently loses data.

type ProtoKind = 'string' | 'bytes' | 'int' | 'bool' | 'msg' | 'map' | 'mapBytes';
interface ProtoField {
  name: string;
  kind: ProtoKind;
  repeated?: boolean;
  schema?: ProtoSchema;
}
type ProtoSchema = Record<number, ProtoField>;

const PB_OBJECT_META: ProtoSchema = {
  1: { name: 'name', kind: 'string' },
  2: { name: 'generateName', kind: 'string' },
  3: { name: 'namespace', kind: 'string' },
  6: { name: 'resourceVersion', kind: 'string' },
  11: { name: 'labels', kind: 'map' },
  12: { name: 'annotations', kind: 'map' },
  14: { name: 'finalizers', kind: 'string', repeated: true },
};
const PB_CONTAINER: ProtoSchema = {
  1: { name: 'name', kind: 'string' },
  2: { name: 'image', kind: 'string' },
  3: { name: 'command', kind: 'string', repeated: true },
  4: { name: 'args', kind: 'string', repeated: true },
  5: { name: 'workingDir', kind: 'string' },
  6: {
    name: 'ports', kind: 'msg', repeated: true,
    schema: { 1: { name: 'name', kind: 'string' }, 3: { name: 'containerPort', kind: 'int' }, 4: { name: 'protocol', kind: 'string' } },
  },
  7: { name: 'env', kind: 'msg', repeated: true, schema: { 1: { name: 'name', kind: 'string' }, 2: { name: 'value', kind: 'string' } } },
  14: { name: 'imagePullPolicy', kind: 'string' },
  16: { name: 'stdin', kind: 'bool' },
  17: { name: 'stdinOnce', kind: 'bool' },
  18: { name: 'tty', kind: 'bool' },
};
const PB_KINDS: Record<string, ProtoSchema> = {
  Namespace: { 1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META }, 2: { name: 'spec', kind: 'msg', schema: { 1: { name: 'finalizers', kind: 'string', repeated: true } } } },
  ConfigMap: { 1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META }, 2: { name: 'data', kind: 'map' }, 3: { name: 'binaryData', kind: 'mapBytes' }, 4: { name: 'immutable', kind: 'bool' } },
  Secret: {
    1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META }, 2: { name: 'data', kind: 'mapBytes' }, 3: { name: 'type', kind: 'string' },
    4: { name: 'stringData', kind: 'map' }, 5: { name: 'immutable', kind: 'bool' },
  },
  SelfSubjectReview: { 1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META } },
  SelfSubjectAccessReview: {
    1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META },
    2: {
      name: 'spec', kind: 'msg',
      schema: {
        1: {
          name: 'resourceAttributes', kind: 'msg',
          schema: {
            1: { name: 'namespace', kind: 'string' }, 2: { name: 'verb', kind: 'string' }, 3: { name: 'group', kind: 'string' },
            4: { name: 'version', kind: 'string' }, 5: { name: 'resource', kind: 'string' }, 6: { name: 'subresource', kind: 'string' },
            7: { name: 'name', kind: 'string' },
          },
        },
        2: { name: 'nonResourceAttributes', kind: 'msg', schema: { 1: { name: 'path', kind: 'string' }, 2: { name: 'verb', kind: 'string' } } },
      },
    },
  },
  Pod: {
    1: { name: 'metadata', kind: 'msg', schema: PB_OBJECT_META },
    2: {
      name: 'spec', kind: 'msg',
      schema: {
        2: { name: 'containers', kind: 'msg', repeated: true, schema: PB_CONTAINER },
        3: { name: 'restartPolicy', kind: 'string' },
        4: { name: 'terminationGracePeriodSeconds', kind: 'int' },
        6: { name: 'dnsPolicy', kind: 'string' },
        8: { name: 'serviceAccountName', kind: 'string' },
      },
    },
  },
};

function readVarint(b: Buffer, at: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = at; i < b.length; i++) {
    const byte = b[i]!;
    v += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return [v, i + 1];
  }
  throw badRequest('truncated protobuf varint');
}

/** True for 0, and for a length-delimited value that is empty or a message of nothing but zero values. */
function isZeroProto(value: Buffer | number): boolean {
  if (typeof value === 'number') return value === 0;
  let at = 0;
  try {
    while (at < value.length) {
      let tag: number;
      [tag, at] = readVarint(value, at);
      const wire = tag & 7;
      if (tag < 8) return false;
      if (wire === 0) {
        let v: number;
        [v, at] = readVarint(value, at);
        if (v !== 0) return false;
      } else if (wire === 2) {
        let len: number;
        [len, at] = readVarint(value, at);
        if (at + len > value.length || !isZeroProto(value.subarray(at, at + len))) return false;
        at += len;
      } else return false;
    }
    return true;
  } catch {
    return false;
  }
}

function decodeProto(b: Buffer, schema: ProtoSchema, where: string): JsonObject {
  const out: JsonObject = {};
  let at = 0;
  while (at < b.length) {
    let tag: number;
    [tag, at] = readVarint(b, at);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let value: Buffer | number;
    if (wire === 0) [value, at] = readVarint(b, at);
    else if (wire === 2) {
      let len: number;
      [len, at] = readVarint(b, at);
      value = b.subarray(at, at + len);
      at += len;
    } else if (wire === 1) {
      value = b.subarray(at, at + 8);
      at += 8;
    } else if (wire === 5) {
      value = b.subarray(at, at + 4);
      at += 4;
    } else throw badRequest(`unsupported protobuf wire type ${wire}`);
    const spec = schema[field];
    if (!spec) {
      // Zero values (generation 0, an unset Time, an empty status whose fields are all "") carry nothing.
      if (isZeroProto(value)) continue;
      throw new StatusError(415, 'UnsupportedMediaType', `the stand-in cannot decode protobuf field ${field} of ${where}; send JSON (e.g. kubectl apply -f) instead`);
    }
    let decoded: Json;
    switch (spec.kind) {
      case 'string':
        decoded = (value as Buffer).toString('utf8');
        break;
      case 'bytes':
        decoded = (value as Buffer).toString('base64');
        break;
      case 'int':
        decoded = value as number;
        break;
      case 'bool':
        decoded = value === 1;
        break;
      case 'msg':
        decoded = decodeProto(value as Buffer, spec.schema ?? {}, `${where}.${spec.name}`);
        break;
      case 'map':
      case 'mapBytes': {
        const entry = decodeProto(value as Buffer, { 1: { name: 'k', kind: 'string' }, 2: { name: 'v', kind: spec.kind === 'map' ? 'string' : 'bytes' } }, `${where}.${spec.name}`);
        const m = isObject(out[spec.name]) ? (out[spec.name] as JsonObject) : {};
        m[str(entry.k) ?? ''] = entry.v ?? '';
        out[spec.name] = m;
        continue;
      }
    }
    if (spec.repeated) out[spec.name] = [...(Array.isArray(out[spec.name]) ? (out[spec.name] as Json[]) : []), decoded];
    else out[spec.name] = decoded;
  }
  return out;
}

/** Decodes a Kubernetes protobuf envelope into the JSON form of the object. */
function decodeKubeProtobuf(body: Buffer): JsonObject {
  if (body.length < 4 || body.toString('latin1', 0, 4) !== 'k8s\0') throw badRequest('protobuf body without the k8s envelope');
  const unknown = decodeProto(body.subarray(4), {
    1: { name: 'typeMeta', kind: 'msg', schema: { 1: { name: 'apiVersion', kind: 'string' }, 2: { name: 'kind', kind: 'string' } } },
    2: { name: 'raw', kind: 'bytes' },
    3: { name: 'contentEncoding', kind: 'string' },
    4: { name: 'contentType', kind: 'string' },
  }, 'Unknown');
  const typeMeta = isObject(unknown.typeMeta) ? unknown.typeMeta : {};
  const kind = str(typeMeta.kind) ?? '';
  const schema = PB_KINDS[kind];
  if (!schema) throw new StatusError(415, 'UnsupportedMediaType', `the stand-in decodes protobuf only for ${Object.keys(PB_KINDS).join(', ')}, not ${kind}; send JSON instead`);
  const o = decodeProto(Buffer.from(str(unknown.raw) ?? '', 'base64'), schema, kind);
  return { apiVersion: str(typeMeta.apiVersion) ?? '', kind, ...o };
}

// ---------------------------------------------------------------------------------------------
// Certificates

async function makeCertificates(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const gen = async () => await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const [caKeys, leafKeys] = await Promise.all([gen(), gen()]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 24 * 3600_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=fake-kube-apiserver-ca',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    subject: 'CN=kube-apiserver',
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingKey: caKeys.privateKey,
    publicKey: leafKeys.publicKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
        { type: 'dns', value: 'localhost' },
        { type: 'dns', value: 'kubernetes.default.svc' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey), 'PRIVATE KEY');
  return { caPem: ca.toString('pem'), certPem: leaf.toString('pem'), keyPem };
}

// ---------------------------------------------------------------------------------------------
// The server

const MAX_BODY = 3 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new StatusError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function tokenEquals(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

/** Starts the stand-in on 127.0.0.1, a free port, with a fresh CA and fresh tokens. */
export async function startFakeApiserver(opts: FakeApiserverOptions = {}): Promise<FakeApiserver> {
  const identities: Record<string, FakeIdentity> = { ...DEFAULT_IDENTITIES, ...opts.identities };
  const tokens: Record<string, string> = {};
  for (const name of Object.keys(identities)) tokens[name] = `${name}-${randomBytes(24).toString('base64url')}`;
  const rules: RbacRule[] = [...(opts.rules ?? DEFAULT_RULES), ...(opts.extraRules ?? [])];
  const gitVersion = opts.gitVersion ?? 'v1.32.0';
  const store = new Store();
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Duplex>();
  let nextRequestId = 1;

  // Pods' ports forward here unless the options say otherwise.
  const echo = createNetServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const echoPort = (echo.address() as { port: number }).port;
  const portForwardTarget = opts.portForwardTarget ?? (() => ({ host: '127.0.0.1', port: echoPort }));

  const certs = await makeCertificates();

  // ---- identity --------------------------------------------------------------------------------

  function authenticate(req: IncomingMessage): FakeIdentity | undefined {
    let token: string | undefined;
    const auth = req.headers.authorization;
    if (auth && /^bearer /i.test(auth)) token = auth.slice(7).trim();
    if (!token) {
      // Browsers cannot set headers on a WebSocket: the real apiserver also takes the token from a subprotocol.
      for (const p of (req.headers['sec-websocket-protocol'] ?? '').split(',')) {
        const m = /^base64url\.bearer\.authorization\.k8s\.io\.(.+)$/.exec(p.trim());
        if (m) token = Buffer.from(m[1]!, 'base64url').toString();
      }
    }
    if (!token) return undefined;
    for (const [name, t] of Object.entries(tokens)) {
      if (tokenEquals(t, token)) {
        const id = identities[name]!;
        return { user: id.user, groups: withAuthenticated(id.groups) };
      }
    }
    return undefined;
  }

  function authorize(a: AuthzAttributes): void {
    if (!rules.some((r) => ruleAllows(r, a))) throw forbidden(a);
  }

  /** Applies Impersonate-* headers after checking the `impersonate` grants (k8s impersonation filter). */
  function impersonate(req: IncomingMessage, actor: FakeIdentity, rec: RecordedRequest): FakeIdentity {
    const users = req.headersDistinct['impersonate-user'] ?? [];
    const groups = (req.headersDistinct['impersonate-group'] ?? []).filter((g) => g !== '');
    const uid = req.headers['impersonate-uid'];
    const extras = Object.keys(req.headers).filter((h) => h.startsWith('impersonate-extra-'));
    if (users.length === 0) {
      if (groups.length > 0 || uid || extras.length > 0) {
        throw new StatusError(500, 'InternalError', `Internal error occurred: requested impersonation of ${groups.length > 0 ? 'groups' : 'uid/extra'} without impersonating a user`);
      }
      return actor;
    }
    const username = users[0]!;
    const base = { user: actor, isResource: true, path: rec.path, verb: 'impersonate' } as const;
    const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
    if (sa) authorize({ ...base, apiGroup: '', resource: 'serviceaccounts', namespace: sa[1], name: sa[2] });
    else authorize({ ...base, apiGroup: '', resource: 'users', name: username });
    for (const g of groups) authorize({ ...base, apiGroup: '', resource: 'groups', name: g });
    if (uid) authorize({ ...base, apiGroup: 'authentication.k8s.io', resource: 'uids', name: String(uid) });
    for (const h of extras) authorize({ ...base, apiGroup: 'authentication.k8s.io', resource: 'userextras', subresource: h.slice('impersonate-extra-'.length), name: String(req.headers[h]) });
    rec.impersonatedUser = username;
    rec.impersonatedGroups = groups;
    let effectiveGroups = groups;
    if (sa && groups.length === 0) effectiveGroups = ['system:serviceaccounts', `system:serviceaccounts:${sa[1]}`];
    return { user: username, groups: username === 'system:anonymous' ? effectiveGroups : withAuthenticated(effectiveGroups) };
  }

  function record(req: IncomingMessage, url: URL): RecordedRequest {
    const h = req.headers;
    const rec: RecordedRequest = {
      id: nextRequestId++,
      time: new Date(),
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      groups: [],
      impersonatedGroups: [],
      status: 0,
      headers: {
        accept: h.accept,
        contentType: h['content-type'],
        userAgent: h['user-agent'],
        upgrade: h.upgrade,
        secWebSocketProtocol: h['sec-websocket-protocol'],
        xStreamProtocolVersion: (req.headersDistinct['x-stream-protocol-version'] ?? []).flatMap((v) => v.split(',').map((s) => s.trim())),
        impersonateUser: h['impersonate-user'] as string | undefined,
        impersonateGroup: req.headersDistinct['impersonate-group'] ?? [],
        authorization: h.authorization?.split(' ')[0],
        xForwardedFor: h['x-forwarded-for'] as string | undefined,
      },
    };
    requests.push(rec);
    return rec;
  }

  /** Authentication, impersonation and authorization shared by plain and upgrade requests. */
  function admit(req: IncomingMessage, url: URL, rec: RecordedRequest): { info: RequestInfo; user: FakeIdentity } {
    const actor = authenticate(req);
    if (!actor) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    rec.authenticatedUser = actor.user;
    const user = impersonate(req, actor, rec);
    rec.user = user.user;
    rec.groups = user.groups;
    const info = requestInfo(rec.method, url.pathname, url.searchParams);
    if (info.isResource) {
      rec.verb = info.verb;
      rec.resource = info.resource;
      rec.subresource = info.subresource;
      rec.namespace = info.namespace;
      rec.name = info.name;
    }
    // exec/attach/portforward over a WebSocket GET still need `create` (the stricter, newer apiserver
    // rule: AuthorizePodWebsocketUpgradeCreatePermission).
    let verb = info.verb;
    if (info.resource === 'pods' && ['exec', 'attach', 'portforward'].includes(info.subresource ?? '')) verb = 'create';
    authorize({
      user,
      verb,
      isResource: info.isResource,
      path: info.path,
      apiGroup: info.group,
      resource: info.resource ?? '',
      subresource: info.subresource,
      namespace: info.namespace,
      name: info.name,
    });
    return { info, user };
  }

  // ---- plain requests ----------------------------------------------------------------------

  function sendJson(res: ServerResponse, rec: RecordedRequest, code: number, body: Json, contentType = 'application/json'): void {
    const text = JSON.stringify(body);
    rec.status = code;
    res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  function sendError(res: ServerResponse, rec: RecordedRequest, err: unknown): void {
    const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, rec, e.code, e.toStatus());
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const rec = record(req, url);
    res.on('finish', () => {
      if (rec.status === 0) rec.status = res.statusCode;
    });
    try {
      const { info, user } = admit(req, url, rec);
      if (!info.isResource) return serveNonResource(req, res, rec, url);
      await serveResource(req, res, rec, url, info, user);
    } catch (err) {
      sendError(res, rec, err);
    }
  }

  function serveNonResource(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, url: URL): void {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const accept = req.headers.accept;
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if (path === '/version') {
      const [, major, minor] = /^v(\d+)\.(\d+)/.exec(gitVersion) ?? ['', '1', '32'];
      return sendJson(res, rec, 200, {
        major, minor, gitVersion, gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean',
        buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23.3', compiler: 'gc', platform: 'linux/amd64',
      });
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      rec.status = 200;
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      return void res.end('ok');
    }
    if (path === '/api' || path === '/apis') {
      const aggregated = aggregatedDiscoveryVersion(accept);
      if (aggregated) {
        const groups = [...new Set(GROUP_VERSIONS.map((gv) => gv.group))].filter((g) => (path === '/api' ? g === '' : g !== ''));
        return sendJson(
          res, rec, 200,
          { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${aggregated}`, metadata: {}, items: groups.map(discoveryGroup) },
          `application/json;g=apidiscovery.k8s.io;v=${aggregated};as=APIGroupDiscoveryList`,
        );
      }
      if (path === '/api') {
        return sendJson(res, rec, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] });
      }
      const groups = [...new Set(GROUP_VERSIONS.filter((gv) => gv.group !== '').map((gv) => gv.group))].map((g) => {
        const versions = GROUP_VERSIONS.filter((gv) => gv.group === g).map((gv) => ({ groupVersion: `${g}/${gv.version}`, version: gv.version }));
        return { name: g, versions, preferredVersion: versions[0]! };
      });
      return sendJson(res, rec, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/([^/]+)$/.exec(path)) || (m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path))) {
      const [group, version] = m.length === 3 && m[2] ? [m[1]!, m[2]] : ['', m[1]!];
      if (!GROUP_VERSIONS.some((gv) => gv.group === group && gv.version === version)) throw pathNotFound();
      return sendJson(res, rec, 200, apiResourceList(group, version));
    }
    if ((m = /^\/apis\/([^/]+)$/.exec(path))) {
      const g = m[1]!;
      const versions = GROUP_VERSIONS.filter((gv) => gv.group === g).map((gv) => ({ groupVersion: `${g}/${gv.version}`, version: gv.version }));
      if (versions.length === 0) throw pathNotFound();
      return sendJson(res, rec, 200, { kind: 'APIGroup', apiVersion: 'v1', name: g, versions, preferredVersion: versions[0]! });
    }
    if (path === '/openapi/v3') {
      const paths: JsonObject = {};
      for (const gv of GROUP_VERSIONS) {
        const doc = JSON.stringify(openapiDocument(gv));
        const hash = createHash('sha512').update(doc).digest('hex').toUpperCase();
        paths[openapiPathFor(gv)] = { serverRelativeURL: `/openapi/v3/${openapiPathFor(gv)}?hash=${hash}` };
      }
      return sendJson(res, rec, 200, { paths });
    }
    if ((m = /^\/openapi\/v3\/(.+)$/.exec(path))) {
      const gv = GROUP_VERSIONS.find((g) => openapiPathFor(g) === m![1]);
      if (!gv) throw pathNotFound();
      return sendJson(res, rec, 200, openapiDocument(gv));
    }
    throw pathNotFound();
  }

  function resolveDef(info: RequestInfo): ResourceDef {
    const def = RESOURCES.find((r) => r.group === info.group && r.version === info.version && r.resource === info.resource);
    if (!def) throw pathNotFound();
    if (!def.namespaced && info.namespace && info.resource !== 'namespaces') throw pathNotFound();
    return def;
  }

  async function parseBody(req: IncomingMessage): Promise<Json> {
    const bytes = await readBody(req);
    const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
    if (ct === 'application/vnd.kubernetes.protobuf') return decodeKubeProtobuf(bytes);
    const raw = bytes.toString('utf8');
    try {
      if (ct === 'application/apply-patch+yaml' || ct === 'application/yaml') return YAML.parse(raw) as Json;
      return JSON.parse(raw) as Json;
    } catch (e) {
      throw badRequest(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: ${(e as Error).message}`);
    }
  }

  function checkKind(def: ResourceDef, o: Json): asserts o is JsonObject {
    if (!isObject(o)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(o)}'`);
    if (o.kind !== undefined && o.kind !== def.kind) {
      throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    if (o.apiVersion !== undefined && o.apiVersion !== apiVersionOf(def)) {
      throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
    }
  }

  /**
   * Field validation (`fieldValidation` = Strict | Warn (default) | Ignore): unknown fields are refused,
   * warned about (a `Warning` header kubectl prints) or dropped silently; a value of the wrong type is
   * always a decoding error, as in the apiserver.
   */
  async function validateFields(def: ResourceDef, o: JsonObject, url: URL, res: ServerResponse): Promise<void> {
    const mode = url.searchParams.get('fieldValidation') ?? 'Warn';
    const { unknown, wrongType, prune } = await fieldErrors(def.kind, o);
    const cannot = `${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}`;
    if (wrongType.length > 0) throw badRequest(`${cannot}: ${wrongType[0]}`);
    if (unknown.length === 0) return;
    const messages = unknown.map((f) => `unknown field "${f}"`);
    if (mode === 'Strict') throw badRequest(`${cannot}: strict decoding error: ${messages.join(', ')}`);
    prune();
    if (mode !== 'Ignore') res.setHeader('Warning', messages.map((m) => `299 - "${m.replace(/["\\]/g, '\\$&')}"`));
  }

  function requireNamespace(def: ResourceDef, ns: string | undefined): void {
    if (def.namespaced && ns && !store.get(NAMESPACES, undefined, ns)) {
      throw new StatusError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
    }
  }

  function prepareNew(def: ResourceDef, o: JsonObject, ns: string | undefined): JsonObject {
    const m = metaOf(o);
    o.apiVersion = apiVersionOf(def);
    o.kind = def.kind;
    if (def.namespaced) {
      if (m.namespace !== undefined && m.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = ns ?? 'default';
    } else delete m.namespace;
    if (!str(m.name)) {
      if (str(m.generateName)) m.name = `${str(m.generateName)}${generateNameSuffix()}`;
      else throw invalid(def, '', 'metadata.name', 'Required value: name or generateName is required');
    }
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(str(m.name)!) && def.group !== 'rbac.authorization.k8s.io') {
      throw invalid(def, str(m.name)!, 'metadata.name', `Invalid value: "${str(m.name)}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
    }
    if (def.resource === 'pods') {
      const spec = isObject(o.spec) ? o.spec : undefined;
      if (!spec || !Array.isArray(spec.containers) || spec.containers.length === 0) {
        throw invalid(def, str(m.name)!, 'spec.containers', 'Required value');
      }
    }
    delete m.resourceVersion;
    defaultObject(def, o);
    // The apiserver's field order: kind, apiVersion, metadata, then the rest.
    const { kind, apiVersion, metadata, ...rest } = o;
    return { kind, apiVersion, metadata: metadata!, ...rest };
  }

  function isDryRun(url: URL): boolean {
    return url.searchParams.getAll('dryRun').includes('All');
  }

  function createObject(def: ResourceDef, body: JsonObject, ns: string | undefined, url: URL): JsonObject {
    requireNamespace(def, ns);
    const o = prepareNew(def, clone(body), ns);
    const name = str(metaOf(o).name)!;
    if (store.get(def, def.namespaced ? ns : undefined, name)) {
      throw new StatusError(409, 'AlreadyExists', `${qualified(def)} "${name}" already exists`, detailsFor(def, name));
    }
    if (isDryRun(url)) return o;
    return store.put(def, o, 'ADDED');
  }

  function updateObject(def: ResourceDef, live: JsonObject, next: JsonObject, url: URL, checkRv: boolean): JsonObject {
    const lm = metaOf(live);
    const nm = metaOf(next);
    const name = str(lm.name)!;
    if (checkRv && nm.resourceVersion !== undefined && nm.resourceVersion !== lm.resourceVersion) {
      throw new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(def)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, detailsFor(def, name));
    }
    if (nm.name !== undefined && nm.name !== name) throw badRequest(`the name of the object (${String(nm.name)}) does not match the name on the URL (${name})`);
    // Immutable system fields survive any update.
    for (const k of ['uid', 'creationTimestamp', 'namespace', 'name', 'deletionTimestamp']) if (lm[k] !== undefined) nm[k] = lm[k]!;
    next.apiVersion = apiVersionOf(def);
    next.kind = def.kind;
    if (def.resource === 'pods' && live.status !== undefined && next.status === undefined) next.status = live.status;
    if (def.resource === 'secrets') foldStringData(next);
    if (def.resource === 'deployments' && JSON.stringify(next.spec) !== JSON.stringify(live.spec)) nm.generation = Number(lm.generation ?? 1) + 1;
    if (JSON.stringify(next) === JSON.stringify(live)) return live; // no-op writes do not bump resourceVersion
    if (isDryRun(url)) return next;
    return store.put(def, next, 'MODIFIED');
  }

  function serverSideApply(def: ResourceDef, ns: string | undefined, name: string, body: Json, url: URL): { code: number; object: JsonObject } {
    checkKind(def, body);
    if (body.apiVersion === undefined || body.kind === undefined) throw badRequest('apiVersion and kind must be set in an apply configuration');
    const manager = url.searchParams.get('fieldManager');
    if (!manager) throw badRequest('PATCH, application/apply-patch+yaml requests require a fieldManager query parameter');
    const bm = metaOf(body);
    if (bm.name !== undefined && bm.name !== name) throw badRequest(`the name of the object (${String(bm.name)}) does not match the name on the URL (${name})`);
    const key = `${def.group}/${def.resource}/${Store.key(ns, name)}`;
    const managers = store.applied.get(key) ?? new Map<string, JsonObject>();
    const live = store.get(def, ns, name);
    const managed = (o: JsonObject) => {
      const byManager = new Map(managers);
      byManager.set(manager, body);
      metaOf(o).managedFields = [...byManager.entries()].map(([mgr, cfg]) => ({
        manager: mgr, operation: 'Apply', apiVersion: apiVersionOf(def), time: nowRfc3339(), fieldsType: 'FieldsV1', fieldsV1: fieldSet(cfg),
      }));
    };
    if (!live) {
      requireNamespace(def, ns);
      const o = prepareNew(def, { ...clone(body), metadata: { ...clone(bm), name } }, ns);
      managed(o);
      if (!isDryRun(url)) {
        store.put(def, o, 'ADDED');
        managers.set(manager, clone(body));
        store.applied.set(key, managers);
      }
      return { code: 201, object: o };
    }
    const previous = managers.get(manager);
    let next = strategicMerge(live, body) as JsonObject;
    if (previous) next = pruneUnapplied(next, previous, body) as JsonObject;
    managed(next);
    const out = updateObject(def, live, next, url, false);
    if (!isDryRun(url)) {
      managers.set(manager, clone(body));
      store.applied.set(key, managers);
    }
    return { code: 200, object: out };
  }

  async function serveResource(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, url: URL, info: RequestInfo, user: FakeIdentity): Promise<void> {
    const def = resolveDef(info);
    if (def.verbs && !def.verbs.includes(info.verb)) {
      throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
    }
    const q = url.searchParams;
    // `/api/v1/namespaces/NAME` names the namespace object itself.
    const ns = def.resource === 'namespaces' ? undefined : info.namespace;
    if (info.subresource) {
      if (def.resource === 'pods' && info.subresource === 'log' && req.method === 'GET') return serveLog(req, res, rec, ns!, info.name!, q);
      if (def.resource === 'pods' && ['exec', 'attach', 'portforward'].includes(info.subresource)) {
        throw badRequest(`Upgrade request required`);
      }
      if (info.subresource === 'status' && req.method === 'GET') {
        const o = store.get(def, ns, info.name!);
        if (!o) throw notFound(def, info.name!);
        return sendJson(res, rec, 200, o);
      }
      throw pathNotFound();
    }
    switch (info.verb) {
      case 'list':
        return serveList(req, res, rec, def, ns, q);
      case 'watch':
        return serveWatch(req, res, rec, def, ns, q);
      case 'get': {
        const o = store.get(def, ns, info.name!);
        if (!o) throw notFound(def, info.name!);
        if (wantsTable(req.headers.accept)) {
          return sendJson(res, rec, 200, toTable(def, [o], { resourceVersion: String(store.rv) }, q.get('includeObject') ?? 'Metadata'), 'application/json;as=Table;v=v1;g=meta.k8s.io');
        }
        return sendJson(res, rec, 200, o);
      }
      case 'create': {
        if (info.name) throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const body = await parseBody(req);
        checkKind(def, body);
        if (def.resource === 'selfsubjectreviews') {
          return sendJson(res, rec, 201, {
            kind: def.kind, apiVersion: apiVersionOf(def), metadata: { creationTimestamp: null },
            status: { userInfo: { username: user.user, groups: user.groups } },
          });
        }
        if (def.resource === 'selfsubjectaccessreviews') {
          const spec = isObject(body.spec) ? body.spec : {};
          const ra = isObject(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
          const nra = isObject(spec.nonResourceAttributes) ? spec.nonResourceAttributes : {};
          const attrs: AuthzAttributes = ra
            ? {
                user, isResource: true, path: '', verb: str(ra.verb) ?? '', apiGroup: str(ra.group) ?? '', resource: str(ra.resource) ?? '',
                subresource: str(ra.subresource) || undefined, namespace: str(ra.namespace) || undefined, name: str(ra.name) || undefined,
              }
            : { user, isResource: false, path: str(nra.path) ?? '', verb: str(nra.verb) ?? '', apiGroup: '', resource: '' };
          const allowed = rules.some((r) => ruleAllows(r, attrs));
          return sendJson(res, rec, 201, {
            kind: def.kind, apiVersion: apiVersionOf(def), metadata: { creationTimestamp: null }, spec,
            status: allowed ? { allowed: true, reason: 'allowed by the stand-in RBAC rules' } : { allowed: false },
          });
        }
        await validateFields(def, body, url, res);
        const o = createObject(def, body, ns, url);
        return sendJson(res, rec, 201, o);
      }
      case 'update': {
        const body = await parseBody(req);
        checkKind(def, body);
        await validateFields(def, body, url, res);
        const live = store.get(def, ns, info.name!);
        if (!live) {
          // PUT creates when the object does not exist (AllowCreateOnUpdate for most kinds).
          metaOf(body).name ??= info.name!;
          return sendJson(res, rec, 201, createObject(def, body, ns, url));
        }
        return sendJson(res, rec, 200, updateObject(def, live, clone(body), url, true));
      }
      case 'patch': {
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const body = await parseBody(req);
        if (ct === 'application/apply-patch+yaml') {
          if (isObject(body)) await validateFields(def, body, url, res);
          const { code, object } = serverSideApply(def, ns, info.name!, body, url);
          return sendJson(res, rec, code, object);
        }
        const live = store.get(def, ns, info.name!);
        if (!live) throw notFound(def, info.name!);
        let next: Json;
        if (ct === 'application/merge-patch+json') next = mergePatch(live, body);
        else if (ct === 'application/strategic-merge-patch+json') next = strategicMerge(live, body);
        else if (ct === 'application/json-patch+json') next = jsonPatch(live, body);
        else throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`);
        if (!isObject(next)) throw badRequest('patch produced a non-object');
        await validateFields(def, next, url, res);
        return sendJson(res, rec, 200, updateObject(def, live, next, url, true));
      }
      case 'delete': {
        const options = await deleteOptions(req);
        const live = store.get(def, ns, info.name!);
        if (!live) throw notFound(def, info.name!);
        const pre = isObject(options.preconditions) ? options.preconditions : {};
        for (const k of ['uid', 'resourceVersion'] as const) {
          if (pre[k] !== undefined && pre[k] !== metaOf(live)[k]) {
            throw new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(def)} "${info.name!}": Precondition failed: ${k === 'uid' ? 'UID' : 'ResourceVersion'} in precondition: ${String(pre[k])}, ${k === 'uid' ? 'UID' : 'ResourceVersion'} in object meta: ${String(metaOf(live)[k])}`, detailsFor(def, info.name));
          }
        }
        const dryRun = isDryRun(url) || (Array.isArray(options.dryRun) && options.dryRun.includes('All'));
        const gone = dryRun ? clone(live) : store.delete(def, ns, info.name!)!;
        if (def.resource === 'pods' || def.resource === 'namespaces') return sendJson(res, rec, 200, gone);
        return sendJson(res, rec, 200, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
          details: { ...detailsFor(def, info.name), uid: str(metaOf(gone).uid) ?? '' },
        });
      }
      case 'deletecollection': {
        const options = await deleteOptions(req);
        const items = filterItems(store.list(def, ns), q);
        const dryRun = isDryRun(url) || (Array.isArray(options.dryRun) && options.dryRun.includes('All'));
        if (!dryRun) for (const o of items) store.delete(def, ns, str(metaOf(o).name)!);
        return sendJson(res, rec, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.rv) }, items });
      }
      default:
        throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  /** DeleteOptions travel in the body of a DELETE (dryRun, preconditions, propagationPolicy). */
  async function deleteOptions(req: IncomingMessage): Promise<JsonObject> {
    const body = await readBody(req);
    if (body.length === 0) return {};
    try {
      const o = JSON.parse(body.toString('utf8')) as Json;
      return isObject(o) ? o : {};
    } catch {
      throw badRequest('the body of the request was in an unknown format - accepted media types include: application/json');
    }
  }

  function filterItems(items: JsonObject[], q: URLSearchParams): JsonObject[] {
    const labels = parseLabelSelector(q.get('labelSelector') ?? '');
    const fields = parseFieldSelector(q.get('fieldSelector') ?? '');
    return items.filter((o) => {
      const l = isObject(metaOf(o).labels) ? (metaOf(o).labels as Record<string, string>) : {};
      return labels.every((r) => r(l)) && fields.every((f) => f(o));
    });
  }

  function serveList(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, def: ResourceDef, ns: string | undefined, q: URLSearchParams): void {
    let items = filterItems(store.list(def, ns), q);
    const cont = q.get('continue');
    if (cont) {
      let start: string;
      try {
        const tok = JSON.parse(Buffer.from(cont, 'base64').toString()) as { start?: string };
        start = (tok.start ?? '');
      } catch {
        throw badRequest('continue key is not valid: illegal base64 data');
      }
      items = items.filter((o) => Store.key(str(metaOf(o).namespace), str(metaOf(o).name)!) >= start);
    }
    const limit = Number(q.get('limit') ?? 0);
    const listMeta: JsonObject = { resourceVersion: String(store.rv) };
    if (limit > 0 && items.length > limit) {
      const next = items[limit]!;
      const start = Store.key(str(metaOf(next).namespace), str(metaOf(next).name)!);
      listMeta.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: store.rv, start })).toString('base64');
      if (!q.get('labelSelector') && !q.get('fieldSelector')) listMeta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    if (wantsTable(req.headers.accept)) {
      return sendJson(res, rec, 200, toTable(def, items, listMeta, q.get('includeObject') ?? 'Metadata'), 'application/json;as=Table;v=v1;g=meta.k8s.io');
    }
    sendJson(res, rec, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: listMeta, items });
  }

  function serveWatch(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, def: ResourceDef, ns: string | undefined, q: URLSearchParams): void {
    const table = wantsTable(req.headers.accept);
    const includeObject = q.get('includeObject') ?? 'Metadata';
    const matches = (o: JsonObject) => (!ns || metaOf(o).namespace === ns) && filterItems([o], q).length === 1;
    const rvParam = q.get('resourceVersion');
    const contentType = table ? 'application/json;as=Table;v=v1;g=meta.k8s.io' : 'application/json';
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let first = true;
    const send = (type: string, o: JsonObject) => {
      const object = table ? toTable(def, [o], { resourceVersion: str(metaOf(o).resourceVersion) ?? '' }, includeObject, first) : o;
      first = false;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const sendBookmark = () => {
      if (!isTrue(q.get('allowWatchBookmarks'))) return;
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.rv) } } })}\n`);
    };
    if (!rvParam || rvParam === '0') {
      for (const o of filterItems(store.list(def, ns), q)) send('ADDED', o);
      if (isTrue(q.get('sendInitialEvents'))) {
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } } })}\n`);
      }
    } else {
      const from = Number(rvParam);
      const oldest = store.events[0]?.rv ?? store.rv;
      if (!Number.isFinite(from) || (from < oldest - 1 && store.events.length >= EVENT_HISTORY)) {
        res.write(`${JSON.stringify({ type: 'ERROR', object: new StatusError(410, 'Expired', `too old resource version: ${rvParam} (${oldest})`).toStatus() })}\n`);
        res.end();
        return;
      }
      for (const e of store.events) if (e.rv > from && e.def === def && matches(e.object)) send(e.type, e.object);
    }
    const watcher = (e: WatchEvent) => {
      if (e.def === def && matches(e.object)) send(e.type, e.object);
    };
    store.watchers.add(watcher);
    const bookmarkTimer = setInterval(sendBookmark, 1000);
    bookmarkTimer.unref();
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    timer?.unref();
    const stop = () => {
      store.watchers.delete(watcher);
      clearInterval(bookmarkTimer);
      if (timer) clearTimeout(timer);
    };
    res.on('close', stop);
    res.on('finish', stop);
  }

  function podAndContainer(ns: string, podName: string, container: string | null): { pod: JsonObject; container: string } {
    const pod = store.get(PODS, ns, podName);
    if (!pod) throw notFound(PODS, podName);
    const containers = (isObject(pod.spec) && Array.isArray(pod.spec.containers) ? pod.spec.containers : []).filter(isObject).map((c) => str(c.name) ?? '');
    if (container) {
      if (!containers.includes(container)) throw badRequest(`container ${container} is not valid for pod ${podName}`);
      return { pod, container };
    }
    if (containers.length !== 1) throw badRequest(`a container name must be specified for pod ${podName}, choose one of: [${containers.join(' ')}]`);
    return { pod, container: containers[0]! };
  }

  function serveLog(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, ns: string, podName: string, q: URLSearchParams): void {
    const { container } = podAndContainer(ns, podName, q.get('container'));
    if (isTrue(q.get('previous'))) throw badRequest(`previous terminated container "${container}" in pod "${podName}" not found`);
    const key = `${ns}/${podName}/${container}`;
    const timestamps = isTrue(q.get('timestamps'));
    const fmt = (line: string) => (timestamps ? `${new Date().toISOString().replace('Z', '000000Z')} ${line}\n` : `${line}\n`);
    let lines = store.logs.get(key) ?? [];
    const tail = q.get('tailLines');
    if (tail !== null) lines = lines.slice(Math.max(0, lines.length - Number(tail)));
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    for (const l of lines) res.write(fmt(l));
    if (!isTrue(q.get('follow'))) {
      res.end();
      return;
    }
    const followers = store.logFollowers.get(key) ?? new Set();
    store.logFollowers.set(key, followers);
    const follower = (line: string) => res.write(fmt(line));
    followers.add(follower);
    const podKey = `${ns}/${podName}`;
    const gone = store.podGone.get(podKey) ?? new Set();
    store.podGone.set(podKey, gone);
    const end = () => res.end();
    gone.add(end);
    res.on('close', () => {
      followers.delete(follower);
      gone.delete(end);
    });
  }

  // ---- upgrades: exec, attach, port-forward ---------------------------------------------------

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (offered) => pickWsProtocol(offered) });

  function pickWsProtocol(offered: Set<string>): string | false {
    if (offered.has(TUNNEL_ALIAS)) return PORTFORWARD_WS_TUNNEL;
    for (const p of offered) if (EXEC_PROTOCOLS.includes(p)) return p;
    return false;
  }

  function rejectUpgrade(socket: Duplex, rec: RecordedRequest, err: unknown): void {
    const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
    rec.status = e.code;
    const body = JSON.stringify(e.toStatus());
    const text = ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' } as Partial<Record<number, string>>)[e.code] ?? 'Error';
    socket.end(`HTTP/1.1 ${e.code} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'https://localhost');
    const rec = record(req, url);
    try {
      const { info } = admit(req, url, rec);
      const sub = info.subresource ?? '';
      if (!info.isResource || info.resource !== 'pods' || !['exec', 'attach', 'portforward'].includes(sub) || !info.namespace || !info.name) {
        throw badRequest('Upgrade request required only for pods/exec, pods/attach and pods/portforward');
      }
      const ns = info.namespace;
      const podName = info.name;
      const q = url.searchParams;
      const upgrade = (req.headers.upgrade ?? '').toLowerCase();
      if (sub === 'portforward') {
        if (!store.get(PODS, ns, podName)) throw notFound(PODS, podName);
      } else {
        podAndContainer(ns, podName, q.get('container'));
      }
      const target = { namespace: ns, name: podName };
      if (upgrade === 'websocket') {
        const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
        const wanted = sub === 'portforward' ? [PORTFORWARD_WS_TUNNEL] : EXEC_PROTOCOLS;
        const protocol = offered.find((p) => wanted.includes(p));
        if (!protocol) throw badRequest(`unable to negotiate a WebSocket subprotocol: client offered [${offered.join(', ')}], server supports [${wanted.join(', ')}]`);
        // `SPDY/3.1+portforward.k8s.io` is not an RFC 6455 token ('/' is a separator): the apiserver's
        // gorilla/websocket accepts it, `ws` answers 400. Hand `ws` a token and answer with the real name.
        if (protocol === PORTFORWARD_WS_TUNNEL) req.headers['sec-websocket-protocol'] = TUNNEL_ALIAS;
        wss.handleUpgrade(req, socket, head, (ws) => {
          rec.status = 101;
          rec.protocol = protocol;
          if (sub === 'portforward') {
            const session = new SpdySession((b) => ws.send(b, { binary: true }), (s) => portForwardStream(session, s, target), () => ws.close(1000));
            ws.on('message', (data: Buffer) => session.feed(data));
            ws.on('close', () => session.close());
          } else {
            execOverWebSocket(ws, protocol, target, q);
          }
        });
        return;
      }
      if (upgrade.startsWith('spdy/3.1')) {
        const offered = rec.headers.xStreamProtocolVersion;
        const wanted = sub === 'portforward' ? [PORTFORWARD_SPDY] : EXEC_PROTOCOLS;
        const protocol = offered.find((p) => wanted.includes(p));
        if (!protocol) {
          throw new StatusError(403, 'Forbidden', `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server supports [${wanted.join(' ')}]`);
        }
        rec.status = 101;
        rec.protocol = protocol;
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
        const session = new SpdySession(
          (b) => socket.write(b),
          (s) => (sub === 'portforward' ? portForwardStream(session, s, target) : execSpdyStream(session, s, target, q)),
          () => socket.end(),
        );
        socket.on('data', (c: Buffer) => session.feed(c));
        socket.on('close', () => session.close());
        if (head.length > 0) session.feed(head);
        return;
      }
      throw badRequest(`unsupported upgrade protocol ${upgrade}`);
    } catch (err) {
      rejectUpgrade(socket, rec, err);
    }
  }

  function execOverWebSocket(ws: WebSocket, protocol: string, pod: { namespace: string; name: string }, q: URLSearchParams): void {
    const v5 = protocol === 'v5.channel.k8s.io';
    let stdinData: (b: Buffer) => void = () => {};
    let stdinEnd: () => void = () => {};
    const closeCbs: (() => void)[] = [];
    const send = (channel: number, b: Buffer) => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), b]), { binary: true });
    };
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) return;
      const channel = data[0]!;
      if (channel === 0) stdinData(data.subarray(1));
      else if (channel === 255 && v5 && data[1] === 0) stdinEnd(); // v5: the client closed stdin
    });
    ws.on('close', () => {
      stdinEnd();
      for (const cb of closeCbs) cb();
    });
    const io: ExecIO = {
      stdout: (b) => send(1, b),
      stderr: (b) => send(2, b),
      stdin: (d, e) => {
        stdinData = d;
        let ended = false;
        stdinEnd = () => {
          if (!ended) {
            ended = true;
            e();
          }
        };
      },
      finish: (status) => {
        send(3, Buffer.from(JSON.stringify(status)));
        ws.close(1000);
      },
      onClose: (cb) => closeCbs.push(cb),
    };
    runCommand(q.getAll('command'), isTrue(q.get('stdin')), io, pod);
  }

  /** SPDY exec: the client opens error/stdin/stdout/stderr/resize streams; run once all expected are open. */
  const spdyExecs = new WeakMap<SpdySession, { streams: Map<string, SpdyStream>; started: boolean }>();

  function execSpdyStream(session: SpdySession, stream: SpdyStream, pod: { namespace: string; name: string }, q: URLSearchParams): void {
    const state = spdyExecs.get(session) ?? { streams: new Map<string, SpdyStream>(), started: false };
    spdyExecs.set(session, state);
    state.streams.set(stream.headers.streamtype ?? '', stream);
    const tty = isTrue(q.get('tty'));
    const expected = ['error', ...(isTrue(q.get('stdin')) ? ['stdin'] : []), ...(isTrue(q.get('stdout')) ? ['stdout'] : []), ...(isTrue(q.get('stderr')) && !tty ? ['stderr'] : []), ...(tty ? ['resize'] : [])];
    if (state.started || !expected.every((t) => state.streams.has(t))) return;
    state.started = true;
    const s = state.streams;
    const closeCbs: (() => void)[] = [];
    const io: ExecIO = {
      stdout: (b) => s.get('stdout')?.write(b),
      stderr: (b) => (s.get('stderr') ?? s.get('stdout'))?.write(b),
      stdin: (d, e) => {
        const stdin = s.get('stdin');
        if (!stdin) return e();
        stdin.onData = d;
        stdin.onEnd = e;
        stdin.onReset = e;
      },
      finish: (status) => {
        s.get('stdout')?.end();
        s.get('stderr')?.end();
        const errStream = s.get('error');
        if (status.status !== 'Success') errStream?.write(Buffer.from(JSON.stringify(status)));
        errStream?.end();
        session.goAway();
      },
      onClose: (cb) => closeCbs.push(cb),
    };
    runCommand(q.getAll('command'), isTrue(q.get('stdin')), io, pod);
  }

  /** Port-forward: per connection the client opens an `error` and a `data` stream with the same requestID. */
  const forwardErrorStreams = new WeakMap<SpdySession, Map<string, SpdyStream>>();

  function portForwardStream(session: SpdySession, stream: SpdyStream, pod: { namespace: string; name: string }): void {
    const errors = forwardErrorStreams.get(session) ?? new Map<string, SpdyStream>();
    forwardErrorStreams.set(session, errors);
    const requestId = stream.headers.requestid ?? '';
    const port = Number(stream.headers.port);
    if (stream.headers.streamtype === 'error') {
      errors.set(requestId, stream);
      return;
    }
    if (stream.headers.streamtype !== 'data') {
      stream.reset();
      return;
    }
    const closeError = (message?: string) => {
      errors.get(requestId)?.end(message ? Buffer.from(message) : undefined);
      errors.delete(requestId);
    };
    const target = portForwardTarget(pod, port);
    const upstream: Socket = netConnect({ host: target.host, port: target.port, allowHalfOpen: true });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    stream.onData = (b) => upstream.write(b);
    stream.onEnd = () => upstream.end();
    stream.onReset = () => upstream.destroy();
    upstream.on('data', (b: Buffer) => stream.write(b));
    upstream.on('end', () => {
      stream.end();
      closeError();
    });
    upstream.on('error', (err) => {
      closeError(`error forwarding port ${port} to pod ${pod.namespace}/${pod.name}: ${err.message}`);
      stream.end();
    });
  }

  // ---- wiring ------------------------------------------------------------------------------

  const server = createHttpsServer({ cert: certs.certPem, key: certs.keyPem });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => void onRequest(req, res));
  server.on('upgrade', onUpgrade);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;

  for (const ns of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'team-a', 'team-b']) {
    store.put(NAMESPACES, prepareNew(NAMESPACES, { metadata: { name: ns } }, undefined), 'ADDED');
  }

  function kubeconfig(user: string | KubeconfigUser, o: KubeconfigOptions = {}): string {
    const creds: KubeconfigUser = typeof user === 'string' ? { token: tokens[user] ?? '' } : user;
    if (!creds.token) throw new Error(`no token named ${String(user)}; known: ${Object.keys(tokens).join(', ')}`);
    const u: Record<string, unknown> = { token: creds.token };
    if (creds.as) u.as = creds.as;
    if (creds.asGroups && creds.asGroups.length > 0) u['as-groups'] = creds.asGroups;
    const context: Record<string, unknown> = { cluster: 'standin', user: 'standin-user' };
    if (o.namespace) context.namespace = o.namespace;
    return YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'standin', cluster: { server: o.server ?? url, 'certificate-authority-data': Buffer.from(o.caPem ?? certs.caPem).toString('base64') } }],
      users: [{ name: 'standin-user', user: u }],
      contexts: [{ name: 'standin', context }],
      'current-context': 'standin',
      preferences: {},
    });
  }

  return {
    url,
    port,
    caPem: certs.caPem,
    adminToken: tokens.admin!,
    tokens,
    identities,
    requests,
    echoPort,
    kubeconfig,
    createNamespace(name) {
      return store.put(NAMESPACES, prepareNew(NAMESPACES, { metadata: { name } }, undefined), 'ADDED');
    },
    createPod(namespace, name, spec) {
      const body: JsonObject = { metadata: { name, namespace }, spec: spec ?? { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', ports: [{ containerPort: 80 }] }] } };
      return createObject(PODS, body, namespace, new URL(url));
    },
    getObject(resource, namespace, name) {
      const def = RESOURCES.find((r) => r.resource === resource);
      if (!def) throw new Error(`unknown resource ${resource}`);
      const o = store.get(def, def.namespaced ? namespace : undefined, name);
      return o ? clone(o) : undefined;
    },
    appendLog(namespace, pod, line, container) {
      const { container: c } = podAndContainer(namespace, pod, container ?? null);
      const key = `${namespace}/${pod}/${c}`;
      const lines = store.logs.get(key) ?? [];
      lines.push(line);
      store.logs.set(key, lines);
      for (const f of store.logFollowers.get(key) ?? []) f(line);
    },
    resourceVersion: () => store.rv,
    async close() {
      for (const w of [...store.watchers]) store.watchers.delete(w);
      for (const s of sockets) s.destroy();
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => echo.close(() => resolve())),
      ]);
    },
  };
}

const NAMESPACES = RESOURCES.find((r) => r.resource === 'namespaces')!;
const PODS = RESOURCES.find((r) => r.resource === 'pods')!;

/**
 * A STAND-IN for kube-apiserver (and the kubelet behind it), for Warren's Kubernetes tests.
 *
 * There is no kube-apiserver package on this machine. This imitates, over HTTPS on 127.0.0.1, only
 * what Warren's tests drive through it — kubectl 1.32 `get` (Tables, `-A`, `--watch`, `-o
 * json|name|jsonpath`, paging), `apply` (client-side and `--server-side`, `--dry-run=client|server`),
 * `delete -f`, `auth whoami`, `exec`, `logs -f` and `port-forward`, and @kubernetes/client-node's
 * list and watch — and answers those paths the way the real one does: real Kubernetes JSON, Status
 * errors with the real reasons and messages. test/kube-standin.test.ts checks it with the real
 * clients, before any Warren code is involved.
 *
 *   GET  /version; /api, /apis as aggregated discovery (apidiscovery.k8s.io/v2; the legacy documents
 *        are a 406 here); /openapi/v3 and its per-group-version documents (./objects.ts)
 *   namespaces, pods, services, serviceaccounts, secrets, persistentvolumeclaims, deployments,
 *   statefulsets, roles, rolebindings, clusterroles, clusterrolebindings:
 *        list (limit/continue; a Table when asked), get, watch (JSON lines; resourceVersion unset or
 *        "0": ADDED for what exists, N: every event after N), create, delete, PATCH as strategic merge
 *        or server-side apply (fieldManager required); `dryRun=All` (query, or the body of a DELETE);
 *        `fieldValidation` Strict | Warn (default) | Ignore against the API types' fields
 *   POST selfsubjectreviews (`kubectl auth whoami`, a protobuf body: answered from the identity alone)
 *   pods/NAME/log (`follow`, `container`; lines from `appendLog()`, sent to followers as appended)
 *   pods/NAME/exec and pods/NAME/portforward over WebSocket and SPDY (./exec.ts, ./spdy.ts)
 *
 *   secrets only: update (PUT), with the real optimistic concurrency (a stale metadata.resourceVersion is
 *        a 409 Conflict; none at all is an unconditional update; a missing Secret a 404)
 *
 * Not there, because no test needs it: update (PUT) of other resources, deletecollection, JSON and merge patches (405 or
 * 415), label and field selectors, other resource types, protobuf bodies other than whoami's (415),
 * cascading deletion, controllers (a Deployment creates no pods), admission beyond "the namespace
 * exists", conflict detection in server-side apply (it merges like a strategic merge patch), HTTP/2.
 *
 * Security like the real one: bearer tokens (unknown or missing → 401 Status); impersonation
 * (`Impersonate-User`, repeated `Impersonate-Group`) only for an identity that may `impersonate`
 * users and groups, else 403; a small RBAC evaluator (rules from the options, not from stored Role
 * objects) decides every request and denies with the real message, e.g.
 *   pods is forbidden: User "dev" cannot list resource "pods" in API group "" at the cluster scope
 * Subresources need their own grant ("pods" does not cover "pods/exec"); exec and portforward need
 * `create` even over a WebSocket GET (the newer apiservers' stricter rule).
 *
 * Every request is recorded in `requests` (identity before and after impersonation, headers of
 * interest, never tokens) so tests can assert what the API server saw.
 *
 * @example
 *   const api = await startFakeApiserver();
 *   after(() => api.close());
 *   writeFileSync(kc, api.kubeconfig({ token: api.tokens.agent!, as: 'dev' }));
 *   await run('kubectl', ['--kubeconfig', kc, 'get', 'pods', '-n', 'team-a']);
 *   assert.equal(api.requests.at(-1)?.user, 'dev');
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import YAML from 'yaml';
import { createCa, issueServerCert, loadCa } from '../../../src/pki/pki.js';
import { execOverWebSocket, execSpdyStream, portForwardStream } from './exec.js';
import {
  AGGREGATED_DISCOVERY, NAMESPACES, PODS, RESOURCES, StatusError, Store, apiVersionOf, badRequest, defaultObject, detailsFor, discoveryList,
  fieldErrors, foldStringData, isObject, keyOf, metaOf, notFound, openapiDocumentAt, openapiIndex, pathNotFound, qualified, str,
  strategicMerge, toTable, wantsAggregatedDiscovery, wantsTable, type Json, type JsonObject, type ResourceDef, type WatchEvent,
} from './objects.js';
import { SpdySession } from './spdy.js';

/** Who a token belongs to. `system:authenticated` is added to every authenticated identity. */
export interface FakeIdentity {
  user: string;
  groups: string[];
}

/**
 * One RBAC grant (a role and its binding folded together). Subjects match by user or group. Without
 * `namespaces` it is cluster-wide (a ClusterRoleBinding); with it, it applies only inside those
 * namespaces (RoleBindings). `'*'` matches anything in a list. Resources name subresources
 * explicitly (`pods/log`); `pods` alone does not cover them.
 */
export interface RbacRule {
  users?: string[];
  groups?: string[];
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  namespaces?: string[];
  /** Only requests that name one of these objects (a list, a watch or a create names none, as in RBAC). */
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RecordedRequest {
  id: number;
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
    upgrade?: string;
    impersonateGroup: string[];
    /** Authorization scheme only (`Bearer`), never the credential. */
    authorization?: string;
    /** What the API server would write as the client's address in its own audit log. */
    xForwardedFor?: string;
  };
}

export interface FakeApiserverOptions {
  /** Added to `DEFAULT_RULES`. */
  extraRules?: RbacRule[];
  /** Namespaces that exist at start; default: default, kube-system, kube-public, team-a, team-b. */
  namespaces?: string[];
}

/** Credentials for a generated kubeconfig. */
export interface KubeconfigUser {
  token: string;
  /** kubeconfig `as` (kubectl `--as`): sent as Impersonate-User. */
  as?: string;
  /** kubeconfig `as-groups` (kubectl `--as-group`): sent as repeated Impersonate-Group. */
  asGroups?: string[];
}

export interface FakeApiserver {
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** CA that signed the serving certificate (SANs 127.0.0.1, ::1, localhost). */
  caPem: string;
  /** Token of `kubernetes-admin` (group system:masters). */
  adminToken: string;
  /** Token by name: admin, agent (a service account that may impersonate), dev, nobody. */
  tokens: Record<string, string>;
  identities: Record<string, FakeIdentity>;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  /** A kubeconfig YAML (nothing is written): a token name from `tokens`, or credentials with impersonation. */
  kubeconfig(user: string | KubeconfigUser): string;
  createNamespace(name: string): JsonObject;
  /** Creates a Running pod with one container `main` (port 80). */
  createPod(namespace: string, name: string): JsonObject;
  /** Current object, or undefined. `resource` is plural, e.g. 'pods' or 'deployments'. */
  getObject(resource: string, namespace: string | undefined, name: string): JsonObject | undefined;
  /** Appends a line to a pod's log; followers get it at once. */
  appendLog(namespace: string, pod: string, line: string): void;
  /** Current resourceVersion (a counter bumped by every write). */
  resourceVersion(): number;
  /** Ends every connection (watches, logs, upgraded streams) and stops listening. */
  close(): Promise<void>;
}

export const AGENT_SERVICE_ACCOUNT = 'system:serviceaccount:warren-system:warren-agent';

const IDENTITIES: Record<string, FakeIdentity> = {
  admin: { user: 'kubernetes-admin', groups: ['system:masters'] },
  agent: { user: AGENT_SERVICE_ACCOUNT, groups: ['system:serviceaccounts', 'system:serviceaccounts:warren-system'] },
  dev: { user: 'dev', groups: [] },
  nobody: { user: 'nobody', groups: [] },
};

/** The grants every stand-in starts with. */
export const DEFAULT_RULES: readonly RbacRule[] = [
  // cluster-admin
  { groups: ['system:masters', 'cluster-admins'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], nonResourceURLs: ['*'] },
  // what the agent manifest's ClusterRole grants: impersonation and nothing else
  { users: [AGENT_SERVICE_ACCOUNT], verbs: ['impersonate'], apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'] },
  // a developer confined to one namespace
  { users: ['dev'], verbs: ['get', 'list', 'watch', 'create', 'delete'], apiGroups: [''], resources: ['pods'], namespaces: ['team-a'] },
  // system:basic-user
  { groups: ['system:authenticated'], verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
  // system:discovery + system:public-info-viewer
  { groups: ['system:authenticated'], verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/version', '/version/', '/openapi', '/openapi/*'] },
];

// ---------------------------------------------------------------------------------------------
// Request attributes (k8s.io/apiserver RequestInfoFactory, reduced) and RBAC

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

const VERB_OF_METHOD: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

function requestInfo(method: string, path: string, query: URLSearchParams): RequestInfo {
  let parts = path.split('/').filter((p) => p !== '');
  let group = '';
  let version: string;
  if (parts[0] === 'api' && parts.length >= 3) {
    version = parts[1]!;
    parts = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    [, group, version] = parts as [string, string, string];
    parts = parts.slice(3);
  } else {
    return { isResource: false, path, verb: method.toLowerCase(), group: '', version: '' };
  }
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1];
    if (parts.length > 2) parts = parts.slice(2);
  }
  const [resource, name, subresource] = parts;
  let verb = VERB_OF_METHOD[method] ?? method.toLowerCase();
  if (method === 'GET' || method === 'HEAD') verb = name ? 'get' : query.get('watch') === 'true' ? 'watch' : 'list';
  if (method === 'DELETE' && !name) verb = 'deletecollection';
  return { isResource: true, path, verb, group, version, namespace, resource, subresource, name };
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

const listMatches = (list: string[] | undefined, value: string) => list !== undefined && (list.includes('*') || list.includes(value));

function ruleAllows(rule: RbacRule, a: AuthzAttributes): boolean {
  const subject = listMatches(rule.users, a.user.user) || a.user.groups.some((g) => listMatches(rule.groups, g));
  if (!subject || !listMatches(rule.verbs, a.verb)) return false;
  if (!a.isResource) return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (!listMatches(rule.apiGroups, a.apiGroup) || !listMatches(rule.resources, resource)) return false;
  if (rule.resourceNames !== undefined && (a.name === undefined || !rule.resourceNames.includes(a.name))) return false;
  return rule.namespaces === undefined || (a.namespace !== undefined && listMatches(rule.namespaces, a.namespace));
}

/** The real apiserver's wording (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters.forbiddenMessage). */
function forbidden(a: AuthzAttributes): StatusError {
  if (!a.isResource) return new StatusError(403, 'Forbidden', `forbidden: User "${a.user.user}" cannot ${a.verb} path "${a.path}"`, {});
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const reason = `User "${a.user.user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ${scope}`;
  const gr = { group: a.apiGroup, resource: a.resource };
  return new StatusError(403, 'Forbidden', `${qualified(gr)}${a.name ? ` "${a.name}"` : ''} is forbidden: ${reason}`, detailsFor(gr, a.name));
}

const withAuthenticated = (groups: string[]) => (groups.includes('system:authenticated') ? [...groups] : [...groups, 'system:authenticated']);

function tokenEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

const MAX_BODY = 3 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) return void chunks.push(c);
      reject(new StatusError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY}`));
      req.destroy();
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const methodNotAllowed = () => new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
const EXEC_PROTOCOL = 'v5.channel.k8s.io';
const PORTFORWARD_WS_TUNNEL = 'SPDY/3.1+portforward.k8s.io';
const PORTFORWARD_SPDY = 'portforward.k8s.io';
/** `SPDY/3.1+portforward.k8s.io` is no RFC 6455 token ('/' separates): `ws` gets this one instead. */
const TUNNEL_ALIAS = 'x-warren-standin-spdy-tunnel';
const TABLE_TYPE = 'application/json;as=Table;v=v1;g=meta.k8s.io';

/** Starts the stand-in on 127.0.0.1, a free port, with a fresh CA and fresh tokens. */
/**
 * The request target as a URL. Prefixing the origin (not passing it as the base) keeps a path that
 * starts with `//` a path, as the real API server reads it, instead of a host that may not parse.
 */
function requestUrl(req: IncomingMessage): URL {
  return new URL(`https://localhost${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
}

export async function startFakeApiserver(opts: FakeApiserverOptions = {}): Promise<FakeApiserver> {
  const identities = { ...IDENTITIES };
  const tokens = Object.fromEntries(Object.keys(identities).map((name) => [name, `${name}-${randomBytes(24).toString('base64url')}`]));
  const rules = [...DEFAULT_RULES, ...(opts.extraRules ?? [])];
  const store = new Store();
  const logs = new Map<string, string[]>();
  const logFollowers = new Map<string, Set<(line: string) => void>>();
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Duplex>();

  // ---- who, and may they ---------------------------------------------------------------------

  function authenticate(req: IncomingMessage): FakeIdentity | undefined {
    const auth = req.headers.authorization ?? '';
    const token = /^bearer /i.test(auth) ? auth.slice(7).trim() : '';
    const name = token ? Object.keys(tokens).find((n) => tokenEquals(tokens[n]!, token)) : undefined;
    return name === undefined ? undefined : { user: identities[name]!.user, groups: withAuthenticated(identities[name]!.groups) };
  }

  function authorize(a: AuthzAttributes): void {
    if (!rules.some((r) => ruleAllows(r, a))) throw forbidden(a);
  }

  /** The impersonation filter: Impersonate-* headers apply if the authenticated identity may impersonate. */
  function impersonate(req: IncomingMessage, actor: FakeIdentity, rec: RecordedRequest): FakeIdentity {
    const user = req.headersDistinct['impersonate-user']?.[0];
    const groups = (req.headersDistinct['impersonate-group'] ?? []).filter((g) => g !== '');
    if (user === undefined) {
      if (groups.length > 0) throw new StatusError(500, 'InternalError', 'Internal error occurred: requested impersonation of groups without impersonating a user');
      return actor;
    }
    const base = { user: actor, isResource: true, path: rec.path, verb: 'impersonate', apiGroup: '' } as const;
    authorize({ ...base, resource: 'users', name: user });
    for (const g of groups) authorize({ ...base, resource: 'groups', name: g });
    rec.impersonatedUser = user;
    rec.impersonatedGroups = groups;
    return { user, groups: withAuthenticated(groups) };
  }

  function record(req: IncomingMessage, url: URL): RecordedRequest {
    const rec: RecordedRequest = {
      id: requests.length + 1,
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      groups: [],
      impersonatedGroups: [],
      status: 0,
      headers: {
        accept: req.headers.accept,
        contentType: req.headers['content-type'],
        upgrade: req.headers.upgrade,
        impersonateGroup: req.headersDistinct['impersonate-group'] ?? [],
        authorization: req.headers.authorization?.split(' ')[0],
        xForwardedFor: req.headers['x-forwarded-for'] as string | undefined,
      },
    };
    requests.push(rec);
    return rec;
  }

  /** Authentication, impersonation and authorization, for plain and upgrade requests alike. */
  function admit(req: IncomingMessage, url: URL, rec: RecordedRequest): { info: RequestInfo; user: FakeIdentity } {
    const actor = authenticate(req);
    if (!actor) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    rec.authenticatedUser = actor.user;
    const user = impersonate(req, actor, rec);
    rec.user = user.user;
    rec.groups = user.groups;
    const info = requestInfo(rec.method, url.pathname, url.searchParams);
    if (info.isResource) Object.assign(rec, { verb: info.verb, resource: info.resource, subresource: info.subresource, namespace: info.namespace, name: info.name });
    const connect = info.resource === 'pods' && (info.subresource === 'exec' || info.subresource === 'portforward');
    authorize({
      user, verb: connect ? 'create' : info.verb, isResource: info.isResource, path: info.path, apiGroup: info.group,
      resource: info.resource ?? '', subresource: info.subresource, namespace: info.namespace, name: info.name,
    });
    return { info, user };
  }

  // ---- plain requests ------------------------------------------------------------------------

  function sendJson(res: ServerResponse, rec: RecordedRequest, code: number, body: Json, contentType = 'application/json'): void {
    const text = JSON.stringify(body);
    rec.status = code;
    res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  /** A streamed answer (watch, logs -f): headers now, lines as they come. */
  function startStream(res: ServerResponse, rec: RecordedRequest, contentType: string): void {
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const rec = record(req, url);
    try {
      const { info, user } = admit(req, url, rec);
      if (info.isResource) await serveResource(req, res, rec, url, info, user);
      else serveNonResource(req, res, rec, url.pathname.replace(/\/+$/, '') || '/');
    } catch (err) {
      const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, rec, e.code, e.toStatus());
    }
  }

  function serveNonResource(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, path: string): void {
    if (req.method !== 'GET') throw methodNotAllowed();
    if (path === '/version') {
      return sendJson(res, rec, 200, {
        major: '1', minor: '32', gitVersion: 'v1.32.0', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean',
        buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23.3', compiler: 'gc', platform: 'linux/amd64',
      });
    }
    if (path === '/api' || path === '/apis') {
      if (!wantsAggregatedDiscovery(req.headers.accept)) {
        throw new StatusError(406, 'NotAcceptable', `the stand-in serves ${path} only as ${AGGREGATED_DISCOVERY} (what kubectl 1.32 asks for)`);
      }
      return sendJson(res, rec, 200, discoveryList(path === '/api'), AGGREGATED_DISCOVERY);
    }
    if (path === '/openapi/v3') return sendJson(res, rec, 200, openapiIndex());
    const doc = path.startsWith('/openapi/v3/') ? openapiDocumentAt(path.slice('/openapi/v3/'.length)) : undefined;
    if (!doc) throw pathNotFound();
    sendJson(res, rec, 200, doc);
  }

  async function serveResource(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, url: URL, info: RequestInfo, user: FakeIdentity): Promise<void> {
    const def = RESOURCES.find((r) => r.group === info.group && r.version === info.version && r.resource === info.resource);
    if (!def || (!def.namespaced && info.namespace && def !== NAMESPACES)) throw pathNotFound();
    // `/api/v1/namespaces/NAME` names the namespace object itself.
    const ns = def === NAMESPACES ? undefined : info.namespace;
    const q = url.searchParams;
    if (info.subresource) {
      if (def === PODS && info.subresource === 'log' && req.method === 'GET') return serveLog(res, rec, ns!, info.name!, q);
      if (def === PODS && (info.subresource === 'exec' || info.subresource === 'portforward')) throw badRequest('Upgrade request required');
      throw pathNotFound();
    }
    if (!(def.verbs ?? ['create', 'delete', 'get', 'list', 'patch', 'watch']).includes(info.verb)) throw methodNotAllowed();
    const dryRun = q.getAll('dryRun').includes('All');
    switch (info.verb) {
      case 'list':
        return serveList(req, res, rec, def, ns, q);
      case 'watch':
        return serveWatch(req, res, rec, def, ns, q);
      case 'get': {
        const o = store.get(def, ns, info.name!);
        if (!o) throw notFound(def, info.name!);
        if (wantsTable(req.headers.accept)) return sendJson(res, rec, 200, toTable(def, [o], { resourceVersion: String(store.rv) }), TABLE_TYPE);
        return sendJson(res, rec, 200, o);
      }
      case 'create': {
        if (info.name) throw methodNotAllowed();
        if (def.resource === 'selfsubjectreviews') {
          await readBody(req); // the answer depends on the identity only
          return sendJson(res, rec, 201, {
            kind: def.kind, apiVersion: apiVersionOf(def), metadata: { creationTimestamp: null }, status: { userInfo: { username: user.user, groups: user.groups } },
          });
        }
        const body = checkKind(def, await parseBody(req));
        await validateFields(def, body, q, res);
        const o = createObject(def, body, ns);
        return sendJson(res, rec, 201, dryRun ? o : store.put(def, o, 'ADDED'));
      }
      case 'patch': {
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        if (type !== 'application/strategic-merge-patch+json' && type !== 'application/apply-patch+yaml') {
          throw new StatusError(415, 'UnsupportedMediaType', `the stand-in accepts only strategic merge patches and server-side apply, not ${type}`);
        }
        const body = await parseBody(req);
        const live = store.get(def, ns, info.name!);
        if (type === 'application/apply-patch+yaml') {
          const config = checkKind(def, body);
          if (!q.get('fieldManager')) throw badRequest('PATCH, application/apply-patch+yaml requests require a fieldManager query parameter');
          await validateFields(def, config, q, res);
          if (!live) {
            const o = createObject(def, { ...config, metadata: { ...metaOf(config), name: info.name! } }, ns);
            return sendJson(res, rec, 201, dryRun ? o : store.put(def, o, 'ADDED'));
          }
        }
        if (!live) throw notFound(def, info.name!);
        const next = strategicMerge(live, body);
        if (!isObject(next)) throw badRequest('the patch does not leave an object');
        await validateFields(def, next, q, res);
        return sendJson(res, rec, 200, updateObject(def, live, next, dryRun));
      }
      case 'update': {
        const body = checkKind(def, await parseBody(req));
        const live = store.get(def, ns, info.name!);
        if (!live) throw notFound(def, info.name!);
        const m = metaOf(body);
        if (m.name !== info.name) throw badRequest(`the name of the object (${String(m.name)}) does not match the name on the URL (${info.name!})`);
        const rv = str(m.resourceVersion);
        if (rv !== undefined && rv !== '' && rv !== str(metaOf(live).resourceVersion)) {
          throw new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(def)} "${info.name!}": the object has been modified; please apply your changes to the latest version and try again`, detailsFor(def, info.name));
        }
        await validateFields(def, body, q, res);
        const next = { ...structuredClone(body), kind: def.kind, apiVersion: apiVersionOf(def) };
        return sendJson(res, rec, 200, updateObject(def, live, next, dryRun));
      }
      case 'delete': {
        // DeleteOptions travel in the body (kubectl sends dryRun there).
        const options = JSON.parse((await readBody(req)).toString() || '{}') as { dryRun?: string[] };
        const live = store.get(def, ns, info.name!);
        if (!live) throw notFound(def, info.name!);
        const gone = dryRun || options.dryRun?.includes('All') ? live : store.delete(def, ns, info.name!)!;
        // Pods are deleted gracefully: the answer is the pod, marked for deletion.
        if (def === PODS) return sendJson(res, rec, 200, { ...gone, metadata: { ...metaOf(gone), deletionTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } });
        return sendJson(res, rec, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { ...detailsFor(def, info.name), uid: str(metaOf(gone).uid) ?? '' } });
      }
      default:
        throw methodNotAllowed();
    }
  }

  async function parseBody(req: IncomingMessage): Promise<Json> {
    const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
    if (type === 'application/vnd.kubernetes.protobuf') throw new StatusError(415, 'UnsupportedMediaType', 'the stand-in decodes no protobuf bodies here; send JSON (e.g. kubectl apply -f)');
    const text = (await readBody(req)).toString('utf8');
    try {
      return (type === 'application/apply-patch+yaml' ? YAML.parse(text) : JSON.parse(text)) as Json;
    } catch (e) {
      throw badRequest(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: ${(e as Error).message}`);
    }
  }

  function checkKind(def: ResourceDef, o: Json): JsonObject {
    if (!isObject(o)) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(o)}'`);
    if ((o.kind !== undefined && o.kind !== def.kind) || (o.apiVersion !== undefined && o.apiVersion !== apiVersionOf(def))) {
      throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    return o;
  }

  /** `fieldValidation` Strict | Warn (default) | Ignore; a value of the wrong type is always a decoding error. */
  async function validateFields(def: ResourceDef, o: JsonObject, q: URLSearchParams, res: ServerResponse): Promise<void> {
    const mode = q.get('fieldValidation') ?? 'Warn';
    const { unknown, wrongType, prune } = await fieldErrors(def.kind, o);
    const cannot = `${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}`;
    if (wrongType.length > 0) throw badRequest(`${cannot}: ${wrongType[0]}`);
    if (unknown.length === 0) return;
    const messages = unknown.map((f) => `unknown field "${f}"`);
    if (mode === 'Strict') throw badRequest(`${cannot}: strict decoding error: ${messages.join(', ')}`);
    prune();
    if (mode !== 'Ignore') res.setHeader('Warning', messages.map((m) => `299 - "${m.replace(/["\\]/g, '\\$&')}"`));
  }

  /** A new object as it would be stored (not stored yet); its namespace must exist. */
  function createObject(def: ResourceDef, body: JsonObject, ns: string | undefined): JsonObject {
    const o = structuredClone(body);
    const m = metaOf(o);
    if (def.namespaced) {
      if (ns && !store.get(NAMESPACES, undefined, ns)) throw new StatusError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
      if (m.namespace !== undefined && m.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = ns ?? 'default';
    } else delete m.namespace;
    const name = str(m.name) ?? '';
    if (store.get(def, def.namespaced ? ns : undefined, name)) throw new StatusError(409, 'AlreadyExists', `${qualified(def)} "${name}" already exists`, detailsFor(def, name));
    delete m.resourceVersion;
    defaultObject(def, o);
    // The apiserver's field order: kind, apiVersion, metadata, then the rest.
    const { metadata, ...rest } = o;
    return { kind: def.kind, apiVersion: apiVersionOf(def), metadata: metadata!, ...rest };
  }

  function updateObject(def: ResourceDef, live: JsonObject, next: JsonObject, dryRun: boolean): JsonObject {
    const lm = metaOf(live);
    const nm = metaOf(next);
    for (const k of ['uid', 'creationTimestamp', 'namespace', 'name', 'resourceVersion']) if (lm[k] !== undefined) nm[k] = lm[k];
    if (def.resource === 'secrets') foldStringData(next);
    if (dryRun || JSON.stringify(next) === JSON.stringify(live)) return next; // a no-op write does not bump resourceVersion
    return store.put(def, next, 'MODIFIED');
  }

  function serveList(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, def: ResourceDef, ns: string | undefined, q: URLSearchParams): void {
    let items = store.list(def, ns);
    const cont = q.get('continue');
    if (cont) {
      const { start } = JSON.parse(Buffer.from(cont, 'base64').toString()) as { start: string };
      items = items.filter((o) => keyOf(o) >= start);
    }
    const limit = Number(q.get('limit') ?? 0);
    const listMeta: JsonObject = { resourceVersion: String(store.rv) };
    if (limit > 0 && items.length > limit) {
      listMeta.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: store.rv, start: keyOf(items[limit]!) })).toString('base64');
      listMeta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    if (wantsTable(req.headers.accept)) return sendJson(res, rec, 200, toTable(def, items, listMeta), TABLE_TYPE);
    sendJson(res, rec, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: listMeta, items });
  }

  function serveWatch(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, def: ResourceDef, ns: string | undefined, q: URLSearchParams): void {
    const table = wantsTable(req.headers.accept);
    startStream(res, rec, table ? TABLE_TYPE : 'application/json');
    let first = true;
    const send = (type: string, o: JsonObject) => {
      const object = table ? toTable(def, [o], { resourceVersion: str(metaOf(o).resourceVersion) ?? '' }, first) : o;
      first = false;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const mine = (e: WatchEvent) => e.def === def && (!ns || metaOf(e.object).namespace === ns);
    const from = q.get('resourceVersion') ?? '0';
    if (from === '0') for (const o of store.list(def, ns)) send('ADDED', o);
    else for (const e of store.events) if (e.rv > Number(from) && mine(e)) send(e.type, e.object);
    const watcher = (e: WatchEvent) => {
      if (mine(e)) send(e.type, e.object);
    };
    store.watchers.add(watcher);
    res.on('close', () => store.watchers.delete(watcher));
  }

  function containerOf(ns: string, podName: string, container: string | null): string {
    const pod = store.get(PODS, ns, podName);
    if (!pod) throw notFound(PODS, podName);
    const names = (isObject(pod.spec) && Array.isArray(pod.spec.containers) ? pod.spec.containers : []).filter(isObject).map((c) => str(c.name) ?? '');
    if (container && !names.includes(container)) throw badRequest(`container ${container} is not valid for pod ${podName}`);
    return container ?? names[0]!;
  }

  function serveLog(res: ServerResponse, rec: RecordedRequest, ns: string, podName: string, q: URLSearchParams): void {
    const key = `${ns}/${podName}/${containerOf(ns, podName, q.get('container'))}`;
    startStream(res, rec, 'text/plain');
    for (const line of logs.get(key) ?? []) res.write(`${line}\n`);
    if (q.get('follow') !== 'true') return void res.end();
    const followers = logFollowers.get(key) ?? new Set();
    logFollowers.set(key, followers);
    const follower = (line: string) => res.write(`${line}\n`);
    followers.add(follower);
    res.on('close', () => followers.delete(follower));
  }

  // ---- upgrades: exec and port-forward -------------------------------------------------------

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (offered) => (offered.has(TUNNEL_ALIAS) ? PORTFORWARD_WS_TUNNEL : offered.has(EXEC_PROTOCOL) && EXEC_PROTOCOL) });

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const url = requestUrl(req);
    const rec = record(req, url);
    try {
      const { info } = admit(req, url, rec);
      const sub = info.subresource;
      if (info.resource !== 'pods' || (sub !== 'exec' && sub !== 'portforward') || !info.namespace || !info.name) {
        throw badRequest('Upgrade request required only for pods/exec and pods/portforward');
      }
      const q = url.searchParams;
      if (sub === 'portforward' && !store.get(PODS, info.namespace, info.name)) throw notFound(PODS, info.name);
      if (sub === 'exec') containerOf(info.namespace, info.name, q.get('container'));
      const wanted = sub === 'exec' ? EXEC_PROTOCOL : req.headers.upgrade?.toLowerCase() === 'websocket' ? PORTFORWARD_WS_TUNNEL : PORTFORWARD_SPDY;
      if (req.headers.upgrade?.toLowerCase() === 'websocket') {
        const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
        if (!offered.includes(wanted)) throw badRequest(`unable to negotiate a WebSocket subprotocol: client offered [${offered.join(', ')}], server supports [${wanted}]`);
        if (wanted === PORTFORWARD_WS_TUNNEL) req.headers['sec-websocket-protocol'] = TUNNEL_ALIAS;
        return wss.handleUpgrade(req, socket, head, (ws) => {
          Object.assign(rec, { status: 101, protocol: wanted });
          if (sub === 'exec') return execOverWebSocket(ws, q);
          const session = new SpdySession((b) => ws.send(b, { binary: true }), (s) => portForwardStream(session, s), () => ws.close(1000));
          ws.on('message', (data: Buffer) => session.feed(data));
          ws.on('close', () => session.close());
        });
      }
      if (!req.headers.upgrade?.toLowerCase().startsWith('spdy/3.1')) throw badRequest(`unsupported upgrade protocol ${req.headers.upgrade ?? ''}`);
      const offered = (req.headersDistinct['x-stream-protocol-version'] ?? []).flatMap((v) => v.split(',').map((s) => s.trim()));
      if (!offered.includes(wanted)) throw new StatusError(403, 'Forbidden', `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server supports [${wanted}]`);
      Object.assign(rec, { status: 101, protocol: wanted });
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${wanted}\r\n\r\n`);
      const session = new SpdySession(
        (b) => socket.write(b),
        (s) => (sub === 'exec' ? execSpdyStream(session, s, q) : portForwardStream(session, s)),
        () => socket.end(),
      );
      socket.on('data', (c: Buffer) => session.feed(c));
      socket.on('close', () => session.close());
      if (head.length > 0) session.feed(head);
    } catch (err) {
      const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
      rec.status = e.code;
      const body = JSON.stringify(e.toStatus());
      socket.end(`HTTP/1.1 ${e.code} ${e.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  const ca = await loadCa(await createCa('kube-apiserver stand-in CA', 1));
  const serving = await issueServerCert(ca, ['127.0.0.1', '::1', 'localhost'], 1);
  const server = createHttpsServer({ cert: serving.certPem, key: serving.keyPem });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => void onRequest(req, res));
  server.on('upgrade', onUpgrade);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;

  const createNamespace = (name: string) => store.put(NAMESPACES, createObject(NAMESPACES, { metadata: { name } }, undefined), 'ADDED');
  for (const ns of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'team-a', 'team-b']) createNamespace(ns);

  return {
    url,
    port,
    caPem: ca.certPem,
    adminToken: tokens.admin!,
    tokens,
    identities,
    requests,
    kubeconfig(user) {
      const creds: KubeconfigUser = typeof user === 'string' ? { token: tokens[user] ?? '' } : user;
      if (!creds.token) throw new Error(`no token named ${String(user)}; known: ${Object.keys(tokens).join(', ')}`);
      return YAML.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'standin', cluster: { server: url, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
        users: [{ name: 'standin-user', user: { token: creds.token, ...(creds.as ? { as: creds.as } : {}), ...(creds.asGroups?.length ? { 'as-groups': creds.asGroups } : {}) } }],
        contexts: [{ name: 'standin', context: { cluster: 'standin', user: 'standin-user' } }],
        'current-context': 'standin',
      });
    },
    createNamespace,
    createPod(namespace, name) {
      const body = { metadata: { name }, spec: { containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10', ports: [{ containerPort: 80 }] }] } };
      return store.put(PODS, createObject(PODS, body, namespace), 'ADDED');
    },
    getObject(resource, namespace, name) {
      const def = RESOURCES.find((r) => r.resource === resource);
      if (!def) throw new Error(`unknown resource ${resource}`);
      const o = store.get(def, def.namespaced ? namespace : undefined, name);
      return o && structuredClone(o);
    },
    appendLog(namespace, pod, line) {
      const key = `${namespace}/${pod}/${containerOf(namespace, pod, null)}`;
      logs.set(key, [...(logs.get(key) ?? []), line]);
      for (const f of logFollowers.get(key) ?? []) f(line);
    },
    resourceVersion: () => store.rv,
    async close() {
      store.watchers.clear();
      for (const s of sockets) s.destroy();
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

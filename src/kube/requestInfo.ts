/**
 * What a Kubernetes API request does, from its method, path and query — the attributes the API
 * server's RequestInfoFactory derives, for the audit trail (Warren never authorizes on them: the member
 * cluster's RBAC does).
 *
 *   GET    /api/v1/namespaces/team-a/pods                  → list pods in team-a
 *   GET    /api/v1/namespaces/team-a/pods?watch=true       → watch pods in team-a
 *   GET    /api/v1/watch/namespaces/team-a/pods            → watch (the deprecated /watch/ prefix)
 *   GET    /api/v1/namespaces/team-a/pods/web-1/log        → get pods/log web-1 in team-a
 *   POST   /api/v1/namespaces/team-a/pods/web-1/exec       → create pods/exec (also a WebSocket GET)
 *   PATCH  /apis/apps/v1/namespaces/x/deployments/web      → patch deployments.apps web in x
 *   DELETE /api/v1/namespaces/team-a/pods                  → deletecollection
 *   GET    /api/v1/namespaces/team-a                       → get namespaces team-a
 *   GET    /api/v1/namespaces/team-a/status                → get namespaces/status team-a
 *   GET    /api, /apis/apps/v1, /version, /openapi/v3      → non-resource: get
 */

export interface KubeRequestInfo {
  readonly resourceRequest: boolean;
  /** get, list, watch, create, update, patch, delete, deletecollection; for non-resource paths the method, lower-cased. */
  readonly verb: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly resource: string;
  readonly subresource: string;
  readonly name: string;
}

/** Subresources of a namespace object itself (`/api/v1/namespaces/NAME/status`), not namespaced resources. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** Subresources whose upgraded GET the API server authorizes as `create`. */
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

const METHOD_VERBS: Record<string, string> = { POST: 'create', GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

function isTrue(v: string | null): boolean {
  return v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);
}

export function kubeRequestInfo(method: string, path: string, query: URLSearchParams, opts: { upgrade?: boolean } = {}): KubeRequestInfo {
  const nonResource: KubeRequestInfo = {
    resourceRequest: false, verb: method.toLowerCase(), apiGroup: '', apiVersion: '', namespace: '', resource: '', subresource: '', name: '',
  };
  let parts = path.split('/').filter((p) => p !== '').map(safeDecode);
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return nonResource;
  let apiGroup = '';
  if (parts[0] === 'apis') {
    if (parts.length < 4) return nonResource;
    apiGroup = parts[1]!;
    parts = parts.slice(2);
  } else parts = parts.slice(1);
  const apiVersion = parts[0]!;
  parts = parts.slice(1);

  let verb = METHOD_VERBS[method.toUpperCase()] ?? method.toLowerCase();
  if (parts[0] === 'watch') {
    verb = 'watch';
    parts = parts.slice(1);
  }
  let namespace = '';
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    // /namespaces/NS/RESOURCE… is a namespaced resource; /namespaces/NS and /namespaces/NS/status are the namespace itself
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const resource = parts[0] ?? '';
  let name = parts[1] ?? '';
  const subresource = parts[2] ?? '';
  if (resource === 'namespaces' && namespace && !name) name = namespace;
  if (resource === 'namespaces') namespace = '';

  if (verb === 'get' && !name) {
    verb = isTrue(query.get('watch')) ? 'watch' : 'list';
    const byName = /(?:^|,)metadata\.name==?([^,]+)/.exec(query.get('fieldSelector') ?? '');
    if (byName) name = byName[1]!;
  }
  if (verb === 'delete' && !name) verb = 'deletecollection';
  if (opts.upgrade && CONNECT_SUBRESOURCES.has(subresource)) verb = 'create';
  return { resourceRequest: resource !== '', verb, apiGroup, apiVersion, namespace, resource, subresource, name };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `pods`, `pods/log`, `deployments.apps`, `deployments.apps/scale`: how the API server's messages name a resource. */
export function resourceLabel(info: KubeRequestInfo): string {
  if (!info.resourceRequest) return '';
  return `${info.resource}${info.apiGroup ? `.${info.apiGroup}` : ''}${info.subresource ? `/${info.subresource}` : ''}`;
}

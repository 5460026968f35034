/**
 * The stand-in's API objects (./apiserver.ts serves them): the resource types, the store and its
 * watch events, what admission and the kubelet fill in, the strategic merge patch that `kubectl
 * apply` sends, strict field decoding, server-side Tables, and the discovery and OpenAPI documents
 * kubectl reads before it writes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function metaOf(o: JsonObject): JsonObject {
  if (!isObject(o.metadata)) o.metadata = {};
  return o.metadata;
}

export function str(v: Json | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// Resource types

export interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Default: the verbs the stand-in implements for objects. */
  verbs?: string[];
  subresources?: { name: string; kind: string; verbs: string[] }[];
}

/** What the stand-in implements (the real one also has update and deletecollection). */
const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'watch'];

export const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', singular: 'namespace', namespaced: false, shortNames: ['ns'] },
  {
    group: '', version: 'v1', resource: 'pods', kind: 'Pod', singular: 'pod', namespaced: true, shortNames: ['po'],
    subresources: [
      { name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] },
      { name: 'log', kind: 'Pod', verbs: ['get'] },
      { name: 'portforward', kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
    ],
  },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', singular: 'service', namespaced: true, shortNames: ['svc'] },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', singular: 'serviceaccount', namespaced: true, shortNames: ['sa'] },
  // update (PUT) only here: the agent keeps its identity in a Secret (--identity-secret).
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', singular: 'secret', namespaced: true, verbs: [...VERBS, 'update'].sort() },
  { group: '', version: 'v1', resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', singular: 'persistentvolumeclaim', namespaced: true, shortNames: ['pvc'] },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', singular: 'deployment', namespaced: true, shortNames: ['deploy'] },
  { group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet', singular: 'statefulset', namespaced: true, shortNames: ['sts'] },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', kind: 'Role', singular: 'role', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', kind: 'RoleBinding', singular: 'rolebinding', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', singular: 'clusterrole', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', singular: 'clusterrolebinding', namespaced: false },
  // `kubectl auth whoami`: answered from the request's identity.
  { group: 'authentication.k8s.io', version: 'v1', resource: 'selfsubjectreviews', kind: 'SelfSubjectReview', singular: 'selfsubjectreview', namespaced: false, verbs: ['create'] },
];

export const NAMESPACES = RESOURCES[0]!;
export const PODS = RESOURCES[1]!;

const GROUP_VERSIONS = [...new Map(RESOURCES.map((r) => [`${r.group}/${r.version}`, { group: r.group, version: r.version }])).values()];

export function apiVersionOf(def: { group: string; version: string }): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

// ---------------------------------------------------------------------------------------------
// Errors as Kubernetes Status objects

export class StatusError extends Error {
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

/** `pods`, or `deployments.apps`: how the apiserver names a resource in messages. */
export function qualified(def: { group: string; resource: string }): string {
  return def.group ? `${def.resource}.${def.group}` : def.resource;
}

export function detailsFor(def: { group: string; resource: string }, name?: string): JsonObject {
  return { ...(name ? { name } : {}), ...(def.group ? { group: def.group } : {}), kind: def.resource };
}

export function notFound(def: ResourceDef, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${qualified(def)} "${name}" not found`, detailsFor(def, name));
}

export const pathNotFound = () => new StatusError(404, 'NotFound', 'the server could not find the requested resource', {});

export function badRequest(message: string): StatusError {
  return new StatusError(400, 'BadRequest', message);
}

// ---------------------------------------------------------------------------------------------
// The store: objects by type and namespace/name, a resourceVersion counter bumped by every write, and
// every write as a watch event (all of them are kept: a watch from any resourceVersion replays).

export interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  def: ResourceDef;
  object: JsonObject;
}

const key = (namespace: string | undefined, name: string) => (namespace ? `${namespace}/${name}` : name);
export const keyOf = (o: JsonObject) => key(str(metaOf(o).namespace), str(metaOf(o).name) ?? '');

export class Store {
  rv = 1;
  private readonly data = new Map<ResourceDef, Map<string, JsonObject>>(RESOURCES.map((def) => [def, new Map()]));
  readonly events: WatchEvent[] = [];
  readonly watchers = new Set<(e: WatchEvent) => void>();

  get(def: ResourceDef, namespace: string | undefined, name: string): JsonObject | undefined {
    return this.data.get(def)!.get(key(namespace, name));
  }

  /** Sorted by namespace/name, like etcd keys. */
  list(def: ResourceDef, namespace: string | undefined): JsonObject[] {
    return [...this.data.get(def)!.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o)
      .filter((o) => !namespace || metaOf(o).namespace === namespace);
  }

  put(def: ResourceDef, o: JsonObject, type: 'ADDED' | 'MODIFIED'): JsonObject {
    metaOf(o).resourceVersion = String(++this.rv);
    this.data.get(def)!.set(keyOf(o), o);
    this.emit(type, def, o);
    return o;
  }

  delete(def: ResourceDef, namespace: string | undefined, name: string): JsonObject | undefined {
    const o = this.get(def, namespace, name);
    if (!o) return undefined;
    this.data.get(def)!.delete(key(namespace, name));
    metaOf(o).resourceVersion = String(++this.rv);
    this.emit('DELETED', def, o);
    return o;
  }

  private emit(type: WatchEvent['type'], def: ResourceDef, object: JsonObject): void {
    const e: WatchEvent = { rv: this.rv, type, def, object: structuredClone(object) };
    this.events.push(e);
    for (const w of [...this.watchers]) w(e);
  }
}

// ---------------------------------------------------------------------------------------------
// What admission, controllers and the kubelet fill in on create

let ipCounter = 10;

export function defaultObject(def: ResourceDef, o: JsonObject): void {
  const m = metaOf(o);
  m.uid = randomUUID();
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  m.creationTimestamp = now;
  if (def === NAMESPACES) {
    o.spec = { finalizers: ['kubernetes'] };
    o.status = { phase: 'Active' };
    m.labels = { ...(isObject(m.labels) ? m.labels : {}), 'kubernetes.io/metadata.name': str(m.name) ?? '' };
  } else if (def.resource === 'services') {
    const spec = isObject(o.spec) ? o.spec : (o.spec = {});
    spec.type ??= 'ClusterIP';
    spec.clusterIP ??= `10.96.0.${ipCounter++ % 250}`;
  } else if (def.resource === 'secrets') {
    foldStringData(o);
  } else if (def === PODS) {
    const spec = isObject(o.spec) ? o.spec : (o.spec = {});
    spec.nodeName ??= 'fake-node';
    const containers = Array.isArray(spec.containers) ? spec.containers.filter(isObject) : [];
    o.status = {
      phase: 'Running',
      podIP: `10.244.0.${ipCounter++ % 250}`,
      startTime: now,
      containerStatuses: containers.map((c) => ({
        name: str(c.name) ?? '', ready: true, restartCount: 0, started: true, image: str(c.image) ?? '', imageID: '',
        containerID: `containerd://${randomBytes(32).toString('hex')}`, state: { running: { startedAt: now } },
      })),
    };
  }
}

/** A Secret's write-only `stringData` is merged into `data` (base64) and never stored. */
export function foldStringData(o: JsonObject): void {
  o.type ??= 'Opaque';
  if (!isObject(o.stringData)) return;
  const data = isObject(o.data) ? o.data : {};
  for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  o.data = data;
  delete o.stringData;
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch (what `kubectl apply` sends for built-in kinds; server-side apply is merged
// the same way here): maps merge, `null` deletes, lists with a patchMergeKey merge by key, other lists
// are replaced; the directives kubectl sends: `$patch` (replace/delete), `$retainKeys`,
// `$setElementOrder/F` (order only: ignored).

/** patchMergeKey of the list fields in the stand-in's kinds (from the Kubernetes API types). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', volumes: 'name', env: 'name', volumeMounts: 'mountPath', imagePullSecrets: 'name',
};

function mergeKeyFor(field: string, items: Json[]): string | undefined {
  // `ports` is keyed by containerPort in a container and by port in a Service.
  if (field === 'ports') return items.some((i) => isObject(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  return MERGE_KEYS[field];
}

export function strategicMerge(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'delete') return null;
  const { $patch, $retainKeys, ...fields } = patch;
  if ($patch === 'replace') return structuredClone(fields);
  const out: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(fields)) {
    if (k.startsWith('$setElementOrder/')) continue;
    const merged = Array.isArray(v) ? mergeList(k, out[k], v) : strategicMerge(out[k], v);
    if (merged === null) delete out[k];
    else out[k] = merged;
  }
  if (Array.isArray($retainKeys)) for (const k of Object.keys(out)) if (!$retainKeys.includes(k)) delete out[k];
  return out;
}

function mergeList(field: string, current: Json | undefined, patch: Json[]): Json[] {
  const mergeKey = mergeKeyFor(field, [...patch, ...(Array.isArray(current) ? current : [])]);
  if (!mergeKey) return structuredClone(patch);
  const out = structuredClone(Array.isArray(current) ? current : []);
  for (const p of patch.filter(isObject)) {
    const at = out.findIndex((x) => isObject(x) && JSON.stringify(x[mergeKey]) === JSON.stringify(p[mergeKey]));
    const merged = strategicMerge(at >= 0 ? out[at] : undefined, p);
    if (merged === null) {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) out[at] = merged;
    else out.push(merged);
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
interface ModelClass {
  getAttributeTypeMap(): AttributeType[];
}
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
  return { unknown, wrongType, prune: () => strays.forEach(([parent, k]) => delete parent[k]) };
}

// ---------------------------------------------------------------------------------------------
// Tables (server-side printing, what `kubectl get` asks for with `Accept: …;as=Table;g=meta.k8s.io`)

export function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((a) => a.includes('as=Table') && a.includes('g=meta.k8s.io'));
}

/** apimachinery's duration.HumanDuration, up to hours. */
function age(o: JsonObject): string {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(str(metaOf(o).creationTimestamp) ?? '')) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  return `${Math.floor(m / 60)}h`;
}

type Cell = (o: JsonObject) => Json;

function columnsFor(def: ResourceDef): [string, Cell][] {
  const name: [string, Cell] = ['Name', (o) => str(metaOf(o).name) ?? ''];
  const status = (o: JsonObject) => (isObject(o.status) ? str(o.status.phase) : undefined) ?? '';
  if (def === PODS) {
    const ready = (o: JsonObject) => {
      const all = isObject(o.status) && Array.isArray(o.status.containerStatuses) ? o.status.containerStatuses : [];
      return `${all.filter((c) => isObject(c) && c.ready === true).length}/${all.length}`;
    };
    return [name, ['Ready', ready], ['Status', status], ['Restarts', () => '0'], ['Age', age]];
  }
  if (def === NAMESPACES) return [name, ['Status', status], ['Age', age]];
  return [name, ['Age', age]];
}

export function toTable(def: ResourceDef, items: JsonObject[], listMeta: JsonObject, withHeaders = true): JsonObject {
  const cols = columnsFor(def);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withHeaders ? cols.map(([n]) => ({ name: n, type: 'string', format: n === 'Name' ? 'name' : '', description: '', priority: 0 })) : [],
    rows: items.map((o) => ({
      cells: cols.map(([, cell]) => cell(o)),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: structuredClone(metaOf(o)) },
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Discovery (aggregated, apidiscovery.k8s.io/v2, what kubectl 1.32 asks for) and OpenAPI v3

export const AGGREGATED_DISCOVERY = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

export function wantsAggregatedDiscovery(accept: string | undefined): boolean {
  return (accept ?? '').replace(/\s+/g, '').split(',').some((a) => a.startsWith(AGGREGATED_DISCOVERY));
}

/** `/api` (legacy: the core group) or `/apis` (every named group). */
export function discoveryList(legacy: boolean): JsonObject {
  const groups = [...new Set(GROUP_VERSIONS.map((gv) => gv.group))].filter((g) => (g === '') === legacy);
  const items = groups.map((group): JsonObject => ({
    metadata: group ? { name: group, creationTimestamp: null } : { creationTimestamp: null },
    versions: GROUP_VERSIONS.filter((gv) => gv.group === group).map((gv) => ({
      version: gv.version,
      freshness: 'Current',
      resources: RESOURCES.filter((r) => r.group === group && r.version === gv.version).map((def) => ({
        resource: def.resource,
        responseKind: { group: def.group, version: def.version, kind: def.kind },
        scope: def.namespaced ? 'Namespaced' : 'Cluster',
        singularResource: def.singular,
        verbs: def.verbs ?? VERBS,
        ...(def.shortNames ? { shortNames: def.shortNames } : {}),
        ...(def.subresources
          ? { subresources: def.subresources.map((s) => ({ subresource: s.name, responseKind: { group: def.group, version: def.version, kind: s.kind }, verbs: s.verbs })) }
          : {}),
      })),
    })),
  }));
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}

const openapiPathFor = (gv: { group: string; version: string }) => (gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`);

/** `/openapi/v3`: the index of per-group-version documents. */
export function openapiIndex(): JsonObject {
  const paths: JsonObject = {};
  for (const gv of GROUP_VERSIONS) {
    const hash = createHash('sha512').update(JSON.stringify(openapiDocument(gv))).digest('hex').toUpperCase();
    paths[openapiPathFor(gv)] = { serverRelativeURL: `/openapi/v3/${openapiPathFor(gv)}?hash=${hash}` };
  }
  return { paths };
}

/**
 * `/openapi/v3/PATH`: a document that holds no schemas, only the write operations declaring the
 * `fieldValidation` parameter. kubectl looks for exactly that to decide the server validates (then it
 * sends `fieldValidation=Strict` and needs no schema of its own).
 */
export function openapiDocumentAt(path: string): JsonObject | undefined {
  const gv = GROUP_VERSIONS.find((g) => openapiPathFor(g) === path);
  return gv && openapiDocument(gv);
}

function openapiDocument(gv: { group: string; version: string }): JsonObject {
  const paths: JsonObject = {};
  const param = { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } };
  for (const def of RESOURCES.filter((r) => r.group === gv.group && r.version === gv.version)) {
    const base = `/${openapiPathFor(gv)}${def.namespaced ? '/namespaces/{namespace}' : ''}/${def.resource}`;
    const op = (verb: string): JsonObject => ({
      operationId: `${verb}${def.kind}`,
      parameters: [param],
      responses: { '200': { description: 'OK' } },
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': { group: def.group, version: def.version, kind: def.kind },
    });
    paths[`${base}/{name}`] = { patch: op('patch') };
    paths[base] = { post: op('post') };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes (stand-in)', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}

/**
 * The Kubernetes door: `https://HUB/k8s/clusters/NAME/…` (and, with `--jwt-public-key`, multikube's
 * API-root routing) forwarded to an agent of cluster NAME, which adds the member cluster's own
 * credentials (src/agent/kube/kubeProxy.ts). Per request:
 *
 *   1. who: a hub access token (Bearer, or Basic with the token as password), a user client
 *      certificate, or a trusted external JWT; failure → 401 Status
 *   2. which cluster: NAME from the path, or the JWT's `ctx` claim on the API root; unknown → 404
 *      Status (reason `ContextNotFound` for a ctx, as multikube answers)
 *   3. may they: a cluster grant (admins always, default deny) → else 403 Status
 *   4. is it there: a connected agent → else 503 Status "cluster NAME has no connected agent"
 *   5. forward: the client's Authorization, every Impersonate-* (audited as stripped) and any
 *      warren-* header are removed; warren-impersonate-user / -group carry the caller (user, groups,
 *      and the grants' --kube-groups) to the agent, which turns them into Impersonate-* headers
 *   6. audit: one `kube` row per request when it ends: user, agent, target = cluster, and in the reason
 *      `verb=… resource=… namespace=… name=… status=… path=…` (plus `stripped=…`), bytes, duration
 *
 * Bodies stream both ways (watch, logs -f); upgrades (exec, attach, port-forward) become raw byte
 * pipes after the 101, through a tunnel stream of their own.
 *
 * Which requests are multikube's: a path under the Kubernetes API root (`/api`, `/apis`, `/version`,
 * `/openapi`, and what is below them) whose Bearer token is a JWT with a `ctx` claim. Hub tokens never
 * carry `ctx`, so `/api/v1/…` with a hub token stays Warren's admin API; a multikube token is a kube
 * credential everywhere under those roots (it never reaches the admin API there).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WarrenError, asWarrenError } from '../../errors.js';
import { isLabel } from '../../hostPort.js';
import type { Logger } from '../../log.js';
import type { GrantRecord } from '../../store/store.js';
import { filterHeaders, isUpgrade, responseHead } from '../../kube/httpHeaders.js';
import { kubeRequestInfo, resourceLabel } from '../../kube/requestInfo.js';
import { isDiscoveryPath, kubeStatus, sendStatus, writeStatusToSocket, type KubeStatus } from '../../kube/status.js';
import { IMPERSONATE_GROUP_HEADER, IMPERSONATE_USER_HEADER } from '../../tunnel/protocol.js';
import { relay } from '../../tunnel/relay.js';
import type { StreamSocket } from '../../tunnel/streamSocket.js';
import type { AuditRow } from '../../store/store.js';
import type { Principal } from '../doors/door.js';
import { tokenFromHeader } from '../auth.js';
import { clusterAccess } from '../policy.js';
import { unverifiedCtx, type ExternalJwt } from '../externalJwt.js';
import type { ClusterStreams } from './clusterStreams.js';

export const KUBE_PREFIX = '/k8s/clusters/';
const KUBE_ROOT = /^\/(api|apis|version|openapi)([/?]|$)/;

export interface KubeRouterDeps {
  readonly streams: Pick<ClusterStreams, 'agentsFor' | 'open' | 'pool'>;
  /** Whether any registered agent (connected or not) has ever reported serving the cluster. */
  readonly isKnownCluster: (cluster: string) => Promise<boolean>;
  readonly listGrants: () => Promise<readonly GrantRecord[]>;
  readonly authenticate: (authorization: string | undefined, socket: import('node:net').Socket) => Promise<Principal>;
  readonly record: (row: Partial<AuditRow> & Pick<AuditRow, 'kind' | 'result'>) => Promise<void>;
  /** --jwt-public-key: enables multikube routing by the `ctx` claim. */
  readonly jwt: ExternalJwt | undefined;
  readonly log: Logger;
}

/** A refusal answered as a Kubernetes Status. */
class KubeRefusal extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
}

interface Admitted {
  readonly principal: Principal;
  readonly cluster: string;
  /** Path and query for the member API server. */
  readonly path: string;
  readonly headers: http.OutgoingHttpHeaders;
  readonly stripped: readonly string[];
}

interface AuditState {
  readonly started: number;
  readonly source: string;
  readonly method: string;
  readonly path: string;
  readonly upgrade: boolean;
  user: string | null;
  cluster: string | null;
  agent: string | null;
  stripped: readonly string[];
  bytesIn: number;
  bytesOut: number;
}

export class KubeRouter {
  constructor(private readonly deps: KubeRouterDeps) {}

  /** Whether the request belongs to this door (see the module comment). */
  claims(req: http.IncomingMessage): boolean {
    const url = req.url ?? '/';
    if (url === '/k8s' || url.startsWith('/k8s/') || url.startsWith('/k8s?')) return true;
    if (!this.deps.jwt || !KUBE_ROOT.test(url)) return false;
    const auth = req.headers.authorization;
    if (!auth || !/^bearer\s/i.test(auth)) return false;
    return unverifiedCtx(auth.replace(/^bearer\s+/i, '').trim()) !== undefined;
  }

  handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const state = this.auditState(req, false);
    this.admit(req, false, state).then(
      (a) => this.forward(req, res, a, state),
      (err: unknown) => {
        const status = this.refusal(err);
        req.resume();
        sendStatus(res, status, { warning: isDiscoveryPath(kubePathOf(state)) });
        void this.audit(state, status.code, status.message);
      },
    );
  }

  /** Takes an upgrade request if it is this door's; false: not ours (the caller answers it). */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (!this.claims(req)) return false;
    socket.on('error', () => undefined);
    const state = this.auditState(req, true);
    void this.upgrade(req, socket, head, state).catch((err: unknown) => {
      const status = this.refusal(err);
      writeStatusToSocket(socket, status);
      void this.audit(state, status.code, status.message);
    });
    return true;
  }

  private auditState(req: http.IncomingMessage, upgrade: boolean): AuditState {
    const url = req.url ?? '/';
    return {
      started: Date.now(), source: `${req.socket.remoteAddress}:${req.socket.remotePort}`, method: req.method ?? 'GET', path: url, upgrade,
      user: null, cluster: null, agent: null, stripped: [], bytesIn: 0, bytesOut: 0,
    };
  }

  private refusal(err: unknown): KubeStatus {
    if (err instanceof KubeRefusal) return err.status;
    const e = asWarrenError(err);
    if (e.code === 'WARREN_E_INTERNAL') this.deps.log.error({ err: (err as Error)?.message }, 'kube request failed');
    return kubeStatus(e.status, e.message);
  }

  private async admit(req: http.IncomingMessage, upgrade: boolean, state: AuditState): Promise<Admitted> {
    const raw = req.url ?? '/';
    let cluster: string;
    let path: string;
    let principal: Principal;
    let viaCtx = false;
    if (raw.startsWith('/k8s')) {
      const m = /^\/k8s\/clusters\/([^/?#]+)(.*)$/s.exec(raw);
      if (!m) throw new KubeRefusal(kubeStatus(404, `nothing at ${raw.split('?')[0]!.slice(0, 200)}; cluster APIs are at ${KUBE_PREFIX}NAME/`));
      cluster = safeDecode(m[1]!);
      path = m[2] === '' ? '/' : m[2]!.startsWith('?') ? `/${m[2]}` : m[2]!;
      principal = await this.deps.authenticate(req.headers.authorization, req.socket as import('node:net').Socket).catch((err: unknown) => {
        throw new KubeRefusal(kubeStatus(401, asWarrenError(err).message));
      });
    } else {
      // multikube: the JWT names the cluster in `ctx` (claims() saw one before verification).
      const claims = await this.deps.jwt!.verify(tokenFromHeader(req.headers.authorization ?? '')).catch((err: unknown) => {
        throw new KubeRefusal(kubeStatus(401, asWarrenError(err).message));
      });
      if (!claims.ctx) throw new KubeRefusal(kubeStatus(401, 'external token has no ctx claim'));
      cluster = claims.ctx;
      path = raw;
      principal = claims.principal;
      viaCtx = true;
    }
    state.user = principal.user;
    state.cluster = cluster;

    const notFound = () =>
      new KubeRefusal(viaCtx ? kubeStatus(404, `context "${cluster.slice(0, 100)}" not found`, 'ContextNotFound') : kubeStatus(404, `cluster "${cluster.slice(0, 100)}" is not known to this hub`));
    if (!isLabel(cluster)) throw notFound();
    const connected = this.deps.streams.agentsFor(cluster).length > 0;
    if (!connected && !(await this.deps.isKnownCluster(cluster))) throw notFound();
    const access = clusterAccess(await this.deps.listGrants(), principal, cluster);
    if (!access.allowed) {
      throw new KubeRefusal(kubeStatus(403, `user "${principal.user}" has no grant for cluster ${cluster} (an admin can add one: warren grant --user ${principal.user} --cluster ${cluster})`));
    }
    if (!connected) throw new KubeRefusal(kubeStatus(503, `cluster ${cluster} has no connected agent`));

    const { headers, dropped } = filterHeaders(req.rawHeaders, {
      upgrade,
      drop: (n) => n === 'authorization' || n === 'host' || n === 'expect' || n.startsWith('impersonate-') || n.startsWith('warren-'),
    });
    const stripped = dropped.filter((n) => /^impersonate-/i.test(n));
    state.stripped = stripped;
    headers.host = cluster;
    headers[IMPERSONATE_USER_HEADER] = principal.user;
    const groups = [...new Set([...principal.groups, ...access.kubeGroups])];
    if (groups.length) headers[IMPERSONATE_GROUP_HEADER] = groups;
    const forwardedFor = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = `${forwardedFor ? `${String(forwardedFor)}, ` : ''}${req.socket.remoteAddress ?? ''}`;
    return { principal, cluster, path, headers, stripped };
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, a: Admitted, state: AuditState): void {
    // The client left while it was being admitted: do not start a watch nobody will read.
    if (!res.socket || res.socket.destroyed) return void this.audit(state, 499, 'client closed the connection');
    let status = 0;
    const proxyReq = http.request({
      agent: this.deps.streams.pool(a.cluster),
      host: a.cluster,
      method: req.method,
      path: a.path,
      headers: a.headers,
      setHost: false,
    });
    proxyReq.on('socket', (s: Duplex) => (state.agent = (s as StreamSocket).tag ?? state.agent));
    proxyReq.on('response', (pres) => {
      status = pres.statusCode ?? 502;
      res.writeHead(status, pres.statusMessage, filterHeaders(pres.rawHeaders, { upgrade: false }).headers);
      // A streamed answer (no length: a watch, logs -f) sends its headers now, so an idle watch looks
      // open to the client; a sized one sends them with its body, in one write.
      if (pres.headers['content-length'] === undefined) res.flushHeaders();
      pres.on('data', (c: Buffer) => void (state.bytesOut += c.length));
      pres.on('error', () => res.destroy());
      pres.pipe(res);
    });
    proxyReq.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      const e = asWarrenError(err instanceof WarrenError ? err : new WarrenError('WARREN_E_TUNNEL_LOST', `the tunnel to cluster ${a.cluster} failed during the request`));
      status = e.status;
      sendStatus(res, kubeStatus(e.status, e.message), { warning: isDiscoveryPath(a.path) });
    });
    req.on('data', (c: Buffer) => void (state.bytesIn += c.length));
    req.pipe(proxyReq);
    res.once('close', () => {
      // The client went away mid-response (a watch ended with ^C): stop the stream to the agent too.
      if (!res.writableFinished) proxyReq.destroy();
      void this.audit(state, status || 499, res.writableFinished ? undefined : 'client closed the connection');
    });
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, state: AuditState): Promise<void> {
    if (!isUpgrade(req.headers)) throw new KubeRefusal(kubeStatus(400, 'malformed upgrade request'));
    const a = await this.admit(req, true, state);
    const tunnel = await this.deps.streams.open(a.cluster);
    state.agent = tunnel.tag ?? null;
    if (socket.destroyed) return void tunnel.destroy();
    const proxyReq = http.request({ createConnection: () => tunnel, method: req.method, path: a.path, headers: a.headers, setHost: false });
    let upgraded = false;
    proxyReq.on('upgrade', (pres, upstream: Duplex, phead: Buffer) => {
      upgraded = true;
      socket.write(responseHead(101, pres.statusMessage ?? 'Switching Protocols', pres.rawHeaders, { keepUpgrade: true }));
      if (phead.length) socket.write(phead);
      if (head.length) upstream.write(head);
      void relay(socket, upstream).then((r) => {
        state.bytesIn += r.aToB;
        state.bytesOut += r.bToA;
        void this.audit(state, 101, r.error ? `upgraded connection aborted: ${r.error.message}` : undefined);
      });
    });
    proxyReq.on('response', (pres) => {
      // The API server refused the upgrade (403, 400…): pass its answer on and close.
      socket.write(responseHead(pres.statusCode ?? 502, pres.statusMessage ?? '', pres.rawHeaders, { keepUpgrade: false }));
      pres.on('data', (c: Buffer) => void (state.bytesOut += c.length));
      pres.pipe(socket);
      pres.once('end', () => void this.audit(state, pres.statusCode ?? 502));
    });
    proxyReq.on('error', (err) => {
      if (upgraded) return;
      const status = this.refusal(err instanceof WarrenError ? err : new WarrenError('WARREN_E_TUNNEL_LOST', `the tunnel to cluster ${a.cluster} failed during the upgrade`));
      writeStatusToSocket(socket, status);
      void this.audit(state, status.code, status.message);
    });
    socket.once('close', () => upgraded || proxyReq.destroy());
    proxyReq.end();
  }

  private audited = new WeakSet<AuditState>();

  /** One row per request, written once, when it has ended. */
  private async audit(state: AuditState, status: number, why?: string): Promise<void> {
    if (this.audited.has(state)) return;
    this.audited.add(state);
    const query = state.path.split('?', 2)[1] ?? '';
    const kubePath = kubePathOf(state);
    const info = kubeRequestInfo(state.method, kubePath, new URLSearchParams(query), { upgrade: state.upgrade });
    const fields = [
      `verb=${info.verb}`, `resource=${resourceLabel(info) || '-'}`, `namespace=${info.namespace || '-'}`, `name=${info.name || '-'}`,
      `status=${status}`, `path=${kubePath.slice(0, 300)}`,
    ];
    if (state.stripped.length) fields.push(`stripped=${state.stripped.join(',')}`);
    if (why) fields.push(`error=${JSON.stringify(why.slice(0, 300))}`);
    await this.deps.record({
      kind: 'kube', door: 'kube', user: state.user, agent: state.agent, target: state.cluster,
      result: status === 401 || status === 403 ? 'denied' : status >= 400 || (status === 101 && why) ? 'error' : 'ok',
      reason: fields.join(' '), bytesIn: state.bytesIn, bytesOut: state.bytesOut, durationMs: Date.now() - state.started, source: state.source,
    });
  }
}

/** The request's path as the member API server sees it (without /k8s/clusters/NAME and the query). */
function kubePathOf(state: AuditState): string {
  const pathname = state.path.split('?', 1)[0]!;
  const m = /^\/k8s\/clusters\/[^/]+(\/.*)?$/.exec(pathname);
  return m ? m[1] ?? '/' : pathname;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

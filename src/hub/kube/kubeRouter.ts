/**
 * The Kubernetes door: `https://HUB/k8s/clusters/NAME/…` (and, with `--jwt-public-key`, multikube's
 * API-root routing) forwarded to an agent of cluster NAME, which adds the member cluster's own
 * credentials (src/agent/kube/kubeProxy.ts). Per request:
 *
 *   1. who: a hub access token (Bearer, or Basic with the token as password), a user client
 *      certificate, or a trusted external JWT; failure → 401 Status
 *   2. which cluster: NAME from the path, or the JWT's `ctx` claim on the API root; unknown → 404
 *      Status (reason `ContextNotFound` for a ctx, as multikube answers)
 *   3. admission by the hub's one pipeline (opener.admit): a cluster grant (admins always, default
 *      deny) → else 403 Status; a connected agent → else 503 "cluster NAME has no connected agent";
 *      the caller's stream quota → else 429 with Retry-After; the request is then watched for
 *      revocation (a deleted token or grant cuts it, watches and exec included)
 *   5. forward: the client's Authorization, every Impersonate-* (audited as stripped), its
 *      X-Forwarded-For / Forwarded and any warren-* header are removed; warren-impersonate-user / -group carry the caller (user, groups,
 *      and the grants' --kube-groups) to the agent, which turns them into Impersonate-* headers
 *   6. audit: one `kube` row per request when it ends: user, agent, target = cluster, verb, resource,
 *      namespace, name and status in columns, and in the reason `path=…` (plus `stripped=…`, `error=…`)
 *
 * Bodies stream both ways (watch, logs -f); upgrades (exec, attach, port-forward) become raw byte
 * pipes after the 101, through a tunnel stream of their own. Plain requests go over pooled streams;
 * when a pooled stream dies before the answer begins (its agent was killed), a GET/HEAD/OPTIONS
 * without a body (watches included) is sent again on a fresh stream, to an agent that is still there,
 * and anything else gets a 503 Status with `Retry-After: 1`, which client-go retries by itself. The
 * answer to such a request, when it is sized and at most 1 MiB, is passed on once whole, so a stream
 * that dies in the middle of it is sent again as well.
 *
 * Which requests are multikube's: a path under the Kubernetes API root (`/api`, `/apis`, `/version`,
 * `/openapi`, and what is below them) whose Bearer token is a JWT with a `ctx` claim. Hub tokens never
 * carry `ctx`, so `/api/v1/…` with a hub token stays Warren's admin API; a multikube token is a kube
 * credential everywhere under those roots (it never reaches the admin API there).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WarrenError, asWarrenError } from '../../shared/errors.js';
import { formatSource } from '../../shared/hostPort.js';
import type { Logger } from '../../shared/log.js';
import { logFailure, newRequestId } from '../../shared/failureLog.js';
import { filterHeaders, isUpgrade, responseHead } from '../../kube/httpHeaders.js';
import { kubeRequestInfo, resourceLabel } from '../../kube/requestInfo.js';
import { isDiscoveryPath, kubeStatus, sendStatus, writeStatusToSocket, type KubeStatus } from '../../kube/status.js';
import { IMPERSONATE_GROUP_HEADER, IMPERSONATE_USER_HEADER } from '../../tunnel/protocol.js';
import { relay } from '../../tunnel/relay.js';
import type { StreamSocket } from '../../tunnel/streamSocket.js';
import type { AuditRow } from '../../store/store.js';
import type { Admission, Admitter, Principal } from '../../doors/door.js';
import { tokenFromHeader } from '../auth.js';
import { unverifiedCtx, type ExternalJwt } from '../externalJwt.js';

export const KUBE_PREFIX = '/k8s/clusters/';
const KUBE_ROOT = /^\/(api|apis|version|openapi)([/?]|$)/;

export interface KubeRouterDeps {
  /** The hub's one pipeline: grants, quotas, revocation, agent choice, pooled kube streams. */
  readonly opener: Admitter;
  readonly authenticate: (authorization: string | undefined, socket: import('node:net').Socket) => Promise<Principal>;
  /** The audit; a kube row is written after its request has been answered (nobody waits for it). */
  readonly record: (row: Partial<AuditRow> & Pick<AuditRow, 'kind' | 'result'>, o: { readonly deferred: true }) => Promise<void>;
  /** --jwt-public-key: enables multikube routing by the `ctx` claim. */
  readonly jwt: ExternalJwt | undefined;
  readonly log: Logger;
}

/** Times an idempotent request is sent again after its stream died before the answer began. */
const REPLAYS = 2;
/** A sized answer to a replayable request up to this long is sent on whole (see forward()). */
const WHOLE_ANSWER_BYTES = 1 << 20;
/**
 * What all such answers may hold in the hub at once, from their first byte until their client has
 * them; past it an answer flows through as it comes (flow-controlled), as a larger one does.
 */
const WHOLE_ANSWERS_BUDGET = 64 << 20;
/** Retry-After (seconds) of the 503 for a request whose tunnel died under it and that is not replayed. */
const TUNNEL_FAILED_RETRY_AFTER_S = 1;

/** A refusal answered as a Kubernetes Status. */
class KubeRefusal extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
}

interface Admitted {
  readonly principal: Principal;
  readonly admission: Admission;
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
  admission: Admission | undefined;
  agent: string | null;
  stripped: readonly string[];
  bytesIn: number;
  bytesOut: number;
}

export class KubeRouter {
  /** Bytes of whole answers held now (see WHOLE_ANSWERS_BUDGET). */
  private wholeAnswers = 0;

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
        const status = this.refusal(err, state);
        req.resume();
        sendStatus(res, status, { warning: isDiscoveryPath(kubePathOf(state)), retryAfterS: retryAfterOf(err) });
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
      const status = this.refusal(err, state);
      writeStatusToSocket(socket, status, { retryAfterS: retryAfterOf(err) });
      void this.audit(state, status.code, status.message);
    });
    return true;
  }

  private auditState(req: http.IncomingMessage, upgrade: boolean): AuditState {
    const url = req.url ?? '/';
    return {
      started: Date.now(), source: formatSource(req.socket), method: req.method ?? 'GET', path: url, upgrade,
      user: null, cluster: null, admission: undefined, agent: null, stripped: [], bytesIn: 0, bytesOut: 0,
    };
  }

  /** The Status for a refusal; a 5xx is logged once, under a request id (an internal error's message repeats it). */
  private refusal(err: unknown, state: AuditState): KubeStatus {
    if (err instanceof KubeRefusal) return err.status;
    const requestId = newRequestId();
    const e = logFailure(this.deps.log, err, { requestId, door: 'kube', source: state.source, cluster: state.cluster, path: state.path.slice(0, 300) });
    return kubeStatus(e.status, e.code === 'WARREN_E_INTERNAL' ? `${e.message} (request id ${requestId})` : e.message);
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
      principal = await this.deps.authenticate(req.headers.authorization, req.socket).catch((err: unknown) => {
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

    const admission = await this.deps.opener.admit({ cluster, principal, door: 'kube', source: state.source }).catch((err: unknown) => {
      const e = asWarrenError(err);
      if (viaCtx && e.code === 'WARREN_E_NOT_FOUND') throw new KubeRefusal(kubeStatus(404, `context "${cluster.slice(0, 100)}" not found`, 'ContextNotFound'));
      throw e;
    });
    state.admission = admission;
    const { headers, dropped } = filterHeaders(req.rawHeaders, {
      upgrade,
      drop: (n) =>
        n === 'authorization' || n === 'host' || n === 'expect' || n === 'x-forwarded-for' || n === 'forwarded' || n.startsWith('impersonate-') || n.startsWith('warren-'),
    });
    const stripped = dropped.filter((n) => /^impersonate-/i.test(n));
    state.stripped = stripped;
    headers.host = cluster;
    headers[IMPERSONATE_USER_HEADER] = principal.user;
    const groups = [...new Set([...principal.groups, ...admission.kubeGroups])];
    if (groups.length) headers[IMPERSONATE_GROUP_HEADER] = groups;
    // The member cluster's audit log sees the client as the hub saw it: whatever a client claims in its
    // own X-Forwarded-For (or Forwarded) is not evidence, so it is dropped, not passed on.
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
    return { principal, admission, cluster, path, headers, stripped };
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, a: Admitted, state: AuditState): void {
    // The client left while it was being admitted: do not start a watch nobody will read. Its request's
    // socket says so; the response's may not be assigned yet (null while an earlier response on the same
    // keep-alive connection is still finishing), which is no reason to leave the request unanswered.
    if (req.socket.destroyed || res.destroyed) return void this.audit(state, 499, 'client closed the connection');
    let status = 0;
    let proxyReq: http.ClientRequest | undefined;
    const bodiless = !req.headers['transfer-encoding'] && (req.headers['content-length'] === undefined || req.headers['content-length'] === '0');
    // Safe to send twice: nothing changes on the server, and no request body has been consumed.
    const replayable = bodiless && ['GET', 'HEAD', 'OPTIONS'].includes(req.method ?? '');
    const send = (attempt: number) => {
      // A replay never goes back to the pool: after an agent dies its other pooled streams may not have
      // failed yet, and LIFO reuse would hand them out first. A fresh stream goes to a live tunnel (the
      // opener skips closed sessions and fails over when one turns out to be lost).
      const connection: http.RequestOptions = attempt === 0 ? { agent: a.admission.pool } : {
        createConnection: (_o, done: (err: Error | null, stream: Duplex) => void) => {
          a.admission.dial().then(({ agent, stream }) => {
            (stream as StreamSocket).tag = agent;
            done(null, stream);
          }, (err: unknown) => done(err as Error, undefined as unknown as Duplex));
          return undefined;
        },
      };
      const preq = http.request({ ...connection, host: a.cluster, method: req.method, path: a.path, headers: a.headers, setHost: false });
      proxyReq = preq;
      preq.on('socket', (s: Duplex) => {
        state.agent = (s as StreamSocket).tag ?? state.agent;
        if (state.agent) a.admission.usedAgent(state.agent);
      });
      // One outcome per attempt: a stream that dies mid-answer fails both the request and its response.
      let failedOnce = false;
      const failed = (err: Error) => {
        if (failedOnce) return;
        failedOnce = true;
        if (res.headersSent || res.destroyed || a.admission.revoked.aborted) return void res.destroy();
        // The stream died before the client was sent anything (its agent was killed or went away): an
        // idempotent request goes again, on a stream to an agent that is still there.
        if (replayable && attempt < REPLAYS && !(err instanceof WarrenError)) return send(attempt + 1);
        // Anything else may or may not have reached the member API server: it is not sent again here,
        // but answered with a 503 that says to retry, with a Retry-After so client-go (kubectl) retries
        // it by itself, through an agent that is still there.
        const e = err instanceof WarrenError ? err : new WarrenError('WARREN_E_UNAVAILABLE', `the tunnel to cluster ${a.cluster} failed during the request; retry it`, { retryAfterS: TUNNEL_FAILED_RETRY_AFTER_S });
        status = e.status;
        sendStatus(res, kubeStatus(e.status, e.message), { warning: isDiscoveryPath(a.path), retryAfterS: retryAfterOf(e) });
      };
      preq.on('response', (pres) => {
        const sized = pres.headers['content-length'] !== undefined;
        const length = Number(pres.headers['content-length']);
        const answer = () => {
          status = pres.statusCode ?? 502;
          res.writeHead(status, pres.statusMessage, filterHeaders(pres.rawHeaders, { upgrade: false }).headers);
        };
        pres.on('error', failed);
        if (replayable && sized && length <= WHOLE_ANSWER_BYTES && this.wholeAnswers + length <= WHOLE_ANSWERS_BUDGET) {
          // A small sized answer to a request that can go again is passed on once it is whole: a stream
          // that dies in the middle of it is then replayed, and the client never sees a cut answer.
          this.wholeAnswers += length;
          res.once('close', () => (this.wholeAnswers -= length));
          const chunks: Buffer[] = [];
          pres.on('data', (c: Buffer) => chunks.push(c));
          pres.once('end', () => {
            if (res.destroyed) return;
            answer();
            const whole = Buffer.concat(chunks);
            state.bytesOut += whole.length;
            res.end(whole);
          });
          return;
        }
        answer();
        // A streamed answer (no length: a watch, logs -f) sends its headers now, so an idle watch looks
        // open to the client; a sized one sends them with its body, in one write.
        if (!sized) res.flushHeaders();
        pres.on('data', (c: Buffer) => void (state.bytesOut += c.length));
        pres.pipe(res);
      });
      preq.on('error', failed);
      if (bodiless) preq.end();
      else req.pipe(preq);
    };
    req.on('data', (c: Buffer) => void (state.bytesIn += c.length));
    const onRevoke = () => (proxyReq?.destroy(), res.destroy());
    a.admission.revoked.addEventListener('abort', onRevoke, { once: true });
    res.once('close', () => {
      a.admission.revoked.removeEventListener('abort', onRevoke);
      // The client went away mid-response (a watch ended with ^C): stop the stream to the agent too.
      if (!res.writableFinished) proxyReq?.destroy();
      void this.audit(state, status || 499, res.writableFinished ? undefined : 'client closed the connection');
    });
    send(0);
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, state: AuditState): Promise<void> {
    if (!isUpgrade(req.headers)) throw new KubeRefusal(kubeStatus(400, 'malformed upgrade request'));
    const a = await this.admit(req, true, state);
    const { agent, stream: tunnel } = await a.admission.dial();
    state.agent = agent;
    if (socket.destroyed) return void tunnel.destroy();
    a.admission.revoked.addEventListener('abort', () => (tunnel.destroy(), socket.destroy()), { once: true });
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
      const status = this.refusal(err instanceof WarrenError ? err : new WarrenError('WARREN_E_TUNNEL_LOST', `the tunnel to cluster ${a.cluster} failed during the upgrade`), state);
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
    state.admission?.end();
    const revoked = state.admission?.revoked.aborted === true;
    if (revoked) why = 'revoked';
    const query = state.path.split('?', 2)[1] ?? '';
    const kubePath = kubePathOf(state);
    const info = kubeRequestInfo(state.method, kubePath, new URLSearchParams(query), { upgrade: state.upgrade });
    const fields = [`path=${kubePath.slice(0, 300)}`];
    if (state.stripped.length) fields.push(`stripped=${state.stripped.join(',')}`);
    if (why) fields.push(`error=${JSON.stringify(why.slice(0, 300))}`);
    await this.deps.record({
      kind: 'kube', door: 'kube', user: state.user, agent: state.agent, target: state.cluster,
      verb: info.verb, resource: resourceLabel(info) || null, namespace: info.namespace || null, name: info.name || null, status,
      result: revoked || status === 401 || status === 403 || status === 429 ? 'denied' : status >= 400 || (status === 101 && why) ? 'error' : 'ok',
      reason: fields.join(' '), bytesIn: state.bytesIn, bytesOut: state.bytesOut, durationMs: Date.now() - state.started, source: state.source,
    }, { deferred: true });
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

function retryAfterOf(err: unknown): number | undefined {
  const s = err instanceof WarrenError ? err.details?.retryAfterS : undefined;
  return typeof s === 'number' ? s : undefined;
}

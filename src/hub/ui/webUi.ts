/**
 * The web UI's side of the hub, everything under /ui/:
 *
 *   GET    /ui/, /ui/PAGE        the app (index.html); without a session: 302 to /ui/signin?next=…
 *   GET    /ui/signin            the app's sign-in page
 *   GET    /ui/assets/NAME       bundled script and styles
 *   POST   /ui/session           {token} → sets the session cookie; answers {user, groups, admin, csrf, expiresAt}
 *   GET    /ui/session           the same for the current session (401 without one)
 *   DELETE /ui/session           signs out (CSRF token required)
 *   GET    /ui/events/agents     admins: server-sent events, one per agent connect/disconnect and a
 *                                periodic tick (RTT, open streams); the page reloads /api/v1/agents
 *   GET    /ui/kubeconfig?cluster=NAME…   a kubeconfig for those clusters with the session's own token
 *   POST   /ui/agent-manifest    admins: {cluster, joinToken, namespace?, replicas?} → the Kubernetes YAML
 *
 * Everything else the UI shows comes from the admin API (/api/v1), which accepts the session cookie
 * in place of a bearer token (sessions.ts, with its CSRF rule).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { WarrenError } from '../../shared/errors.js';
import type { FailureLog } from '../../shared/failureLog.js';
import { isLabel } from '../../shared/hostPort.js';
import { kubeconfigYaml } from '../../kube/kubeconfig.js';
import { agentManifest } from '../../kube/manifest.js';
import { isAdmin } from '../accessTokens.js';
import type { HubAuth } from '../auth.js';
import { readJson, sendError, sendJson } from '../httpJson.js';
import { SECURITY_HEADERS, UiFiles } from './static.js';
import { UiSessions, type ResolvedSession } from './sessions.js';

/** How often the agents event stream ticks so RTT and stream counts stay current. */
const AGENT_TICK_MS = 2_000;

export interface WebUiDeps {
  readonly auth: Pick<HubAuth, 'fromToken'>;
  /** Emits 'connected' and 'disconnected' with the agent's name. */
  readonly tunnels: NodeJS.EventEmitter;
  readonly caPem: string;
  /** The hub's public URL (known once it listens). */
  readonly hubUrl: () => string;
  readonly log: FailureLog;
}

const manifestSchema = z
  .object({
    cluster: z.string().refine(isLabel, 'cluster must be an RFC 1123 label'),
    joinToken: z.string().min(1).max(2048),
    namespace: z.string().refine(isLabel, 'namespace must be an RFC 1123 label').optional(),
    replicas: z.number().int().min(1).max(100).optional(),
  })
  .strict();

export class WebUi {
  readonly sessions: UiSessions;
  private readonly files = new UiFiles();

  constructor(private readonly deps: WebUiDeps) {
    this.sessions = new UiSessions(deps.auth);
  }

  static claims(pathname: string): boolean {
    return pathname === '/ui' || pathname.startsWith('/ui/');
  }

  handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.route(req, res, url).catch((err: unknown) => sendError(res, err, this.deps.log));
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (p.startsWith('/ui/assets/')) return this.files.sendAsset(res, p.slice('/ui/assets/'.length));
    if (p === '/ui/session') return this.sessionRoute(req, res, method);
    if (p === '/ui/signin' && (method === 'GET' || method === 'HEAD')) return this.files.sendIndex(res);
    if (p === '/ui/events/agents') return this.agentEvents(req, res, await this.admin(req));
    if (p === '/ui/kubeconfig' && method === 'GET') return this.kubeconfig(res, url, await this.required(req));
    if (p === '/ui/agent-manifest' && method === 'POST') {
      await this.admin(req);
      const body = await readJson(req, manifestSchema);
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/yaml', 'cache-control': 'no-store' });
      return void res.end(agentManifest(body));
    }
    if (method !== 'GET' && method !== 'HEAD') throw new WarrenError('WARREN_E_METHOD_NOT_ALLOWED', `${method} is not supported on ${p}`);
    // A page of the app: only with a session.
    if (!/^\/ui(\/[\w-]*)?$/.test(p)) throw new WarrenError('WARREN_E_NOT_FOUND', `no web UI page ${p}`);
    if (!(await this.sessions.resolve(req))) {
      res.writeHead(302, { ...SECURITY_HEADERS, location: `/ui/signin?next=${encodeURIComponent(p + url.search)}`, 'cache-control': 'no-store' });
      return void res.end();
    }
    this.files.sendIndex(res);
  }

  private async sessionRoute(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    if (method === 'POST') {
      const body = await readJson(req, z.object({ token: z.string().min(1).max(8192) }).strict());
      const { session, setCookie } = await this.sessions.create(body.token);
      return sendJson(res, 200, view(session), { 'set-cookie': setCookie });
    }
    if (method === 'GET') return sendJson(res, 200, view(await this.required(req)));
    if (method === 'DELETE') {
      const session = await this.sessions.resolve(req);
      if (session) this.sessions.checkCsrf(req, session);
      return sendJson(res, 200, { signedOut: true }, { 'set-cookie': this.sessions.end(req) });
    }
    throw new WarrenError('WARREN_E_METHOD_NOT_ALLOWED', `${method} is not supported on /ui/session; use GET, POST or DELETE`);
  }

  private async required(req: IncomingMessage): Promise<ResolvedSession> {
    const session = await this.sessions.resolve(req);
    if (!session) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'no web UI session: sign in at /ui/signin');
    this.sessions.checkCsrf(req, session);
    return session;
  }

  private async admin(req: IncomingMessage): Promise<ResolvedSession> {
    const session = await this.required(req);
    if (!isAdmin(session.principal)) throw new WarrenError('WARREN_E_FORBIDDEN', `user "${session.principal.user}" is not an admin (group warren:admins)`);
    return session;
  }

  private agentEvents(req: IncomingMessage, res: ServerResponse, session: ResolvedSession): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (data: object) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    const onConnected = (agent: string) => send({ event: 'connected', agent });
    const onDisconnected = (agent: string) => send({ event: 'disconnected', agent });
    this.deps.tunnels.on('connected', onConnected);
    this.deps.tunnels.on('disconnected', onDisconnected);
    // Each tick also re-checks the session: a revoked token ends the stream.
    const timer = setInterval(() => {
      void this.sessions.resolve(req).then((s) => (s?.token === session.token ? send({ event: 'tick' }) : res.end()));
    }, AGENT_TICK_MS);
    send({ event: 'hello' });
    res.once('close', () => {
      clearInterval(timer);
      this.deps.tunnels.off('connected', onConnected);
      this.deps.tunnels.off('disconnected', onDisconnected);
    });
  }

  private kubeconfig(res: ServerResponse, url: URL, session: ResolvedSession): void {
    const clusters = [...new Set(url.searchParams.getAll('cluster'))];
    if (clusters.length === 0) throw new WarrenError('WARREN_E_BAD_REQUEST', 'give ?cluster=NAME (repeatable)', { field: 'cluster' });
    for (const c of clusters) if (!isLabel(c)) throw new WarrenError('WARREN_E_BAD_REQUEST', `cluster "${c.slice(0, 100)}" is not a cluster name`, { field: 'cluster' });
    const user = session.principal.user;
    const text = kubeconfigYaml({ hubUrl: this.deps.hubUrl(), caPem: this.deps.caPem, clusters, user, token: session.token });
    const file = `warren-${user.replace(/[^\w.-]/g, '_')}.kubeconfig`;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/yaml', 'content-disposition': `attachment; filename="${file}"`, 'cache-control': 'no-store' });
    res.end(text);
  }
}

function view(s: ResolvedSession) {
  return { user: s.principal.user, groups: s.principal.groups, admin: isAdmin(s.principal), csrf: s.csrf, expiresAt: new Date(s.expiresAt).toISOString() };
}

/**
 * The agent's side of the Kubernetes door: a reverse proxy from the hub's kube streams to this
 * agent's API server, with the agent's own credentials and the caller's identity.
 *
 * Each hub stream (CONNECT, `warren-service: kube`, see src/tunnel/protocol.ts) becomes one HTTP/1.1
 * connection of an in-process `http.Server` (it never listens on a port). Per request:
 *
 *   - every incoming Authorization, Impersonate-* and warren-* header is dropped;
 *   - Authorization becomes the agent's credential (src/agent/kube/credentials.ts);
 *   - Impersonate-User / Impersonate-Group come from the hub's trusted warren-impersonate-* headers. A
 *     request without warren-impersonate-user is refused: the agent never acts as itself, so its
 *     ServiceAccount needs `impersonate` and nothing else, and the member cluster's RBAC judges the caller;
 *   - bodies stream both ways without buffering (watch, logs -f, large lists);
 *   - an Upgrade request (exec, attach, port-forward over SPDY or WebSocket) is sent on its own
 *     connection; after the API server's 101 the two sockets are joined as a raw byte pipe.
 *
 * Connections to the API server are kept alive and shared by all callers (identity is per request).
 */
import http from 'node:http';
import https from 'node:https';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { WarrenError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { filterHeaders, isUpgrade, rawValues, responseHead } from '../../kube/httpHeaders.js';
import { isDiscoveryPath, kubeStatus, sendStatus, writeStatusToSocket, type KubeStatus } from '../../kube/status.js';
import { IMPERSONATE_GROUP_HEADER, IMPERSONATE_USER_HEADER } from '../../tunnel/protocol.js';
import { relay } from '../../tunnel/relay.js';
import { streamSocket } from '../../tunnel/streamSocket.js';
import { refuseStream } from '../../tunnel/refusalHeaders.js';
import type { KubeCredentials, UpstreamCredentials } from './credentials.js';

/** An idle hub stream is closed by the hub first (its pool times out sooner), never by us mid-reuse. */
const IDLE_STREAM_MS = 10 * 60_000;

/**
 * Headers that must not reach the API server from the hub's side: credentials, identity assertions
 * (Impersonate-*, and X-Remote-* which an API server may honour from a front proxy), and Warren's own.
 */
function dropIncoming(lower: string): boolean {
  return lower === 'authorization' || lower === 'host' || lower === 'expect' || lower.startsWith('impersonate-') || lower.startsWith('x-remote-') || lower.startsWith('warren-');
}

export class KubeProxy {
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();

  constructor(
    readonly clusters: readonly string[],
    private readonly creds: KubeCredentials,
    private readonly log: Logger,
  ) {
    this.server = http.createServer({ requestTimeout: 0, keepAliveTimeout: IDLE_STREAM_MS, maxHeaderSize: 64 * 1024 });
    this.server.on('request', (req, res) => void this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onUpgrade(req, socket, head));
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  /** Takes a hub stream for `cluster` (its CONNECT authority). */
  serve(stream: ServerHttp2Stream, cluster: string): void {
    if (!this.clusters.includes(cluster)) {
      return refuseStream(stream, new WarrenError('WARREN_E_NOT_FOUND', `agent does not serve cluster "${cluster.slice(0, 100)}" (it serves ${this.clusters.join(', ')})`));
    }
    stream.respond({ ':status': 200 });
    const socket = streamSocket(stream);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.server.emit('connection', socket);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.creds.close();
  }

  /** The caller as the hub asserted it, or a Status explaining why there is none. */
  private identity(req: http.IncomingMessage): { user: string; groups: string[] } | KubeStatus {
    const users = rawValues(req.rawHeaders, IMPERSONATE_USER_HEADER);
    if (users.length !== 1 || !users[0]) return kubeStatus(403, 'warren agent: the request carries no caller identity; the agent never acts as itself');
    return { user: users[0], groups: rawValues(req.rawHeaders, IMPERSONATE_GROUP_HEADER) };
  }

  private async upstream(req: http.IncomingMessage, upgrade: boolean): Promise<{ options: https.RequestOptions; mod: typeof https | typeof http; creds: UpstreamCredentials } | KubeStatus> {
    const who = this.identity(req);
    if ('kind' in who) return who;
    let creds: UpstreamCredentials;
    try {
      creds = await this.creds.current();
    } catch (err) {
      return kubeStatus(503, `warren agent: cannot apply the member cluster credentials: ${(err as Error).message}`);
    }
    const { headers } = filterHeaders(req.rawHeaders, { upgrade, drop: dropIncoming });
    headers.host = creds.base.host;
    if (creds.authorization) headers.authorization = creds.authorization;
    headers['impersonate-user'] = who.user;
    if (who.groups.length) headers['impersonate-group'] = who.groups;
    const prefix = creds.base.pathname.replace(/\/+$/, '');
    return {
      creds,
      mod: creds.base.protocol === 'https:' ? https : http,
      options: {
        agent: creds.agent,
        protocol: creds.base.protocol,
        hostname: creds.base.hostname.replace(/^\[|\]$/g, ''),
        port: creds.base.port || (creds.base.protocol === 'https:' ? 443 : 80),
        method: req.method,
        path: prefix + (req.url ?? '/'),
        headers,
        setHost: false,
      },
    };
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const up = await this.upstream(req, false);
    if ('kind' in up) {
      req.resume();
      return sendStatus(res, up, { warning: isDiscoveryPath(req.url ?? '/') });
    }
    if (!res.socket || res.socket.destroyed) return; // the hub cancelled while the credentials were applied
    const upReq = up.mod.request(up.options);
    upReq.on('response', (upRes) => {
      if (upRes.statusCode === 401) this.creds.invalidate();
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, filterHeaders(upRes.rawHeaders, { upgrade: false }).headers);
      // A streamed answer (no length: a watch, logs -f) sends its headers now, not with the first event,
      // so the client sees it open; a sized one sends them with its body, in one write.
      if (upRes.headers['content-length'] === undefined) res.flushHeaders();
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    upReq.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      sendStatus(res, kubeStatus(503, `warren agent: cannot reach the API server ${up.creds.base.origin}: ${(err as NodeJS.ErrnoException).code ?? err.message}`), {
        warning: isDiscoveryPath(req.url ?? '/'),
      });
    });
    // The hub (or its client) went away: stop the API server's work too (a watch, a log follow).
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    req.pipe(upReq);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    if (!isUpgrade(req.headers)) return writeStatusToSocket(socket, kubeStatus(400, 'warren agent: malformed upgrade request'));
    const up = await this.upstream(req, true);
    if ('kind' in up) return writeStatusToSocket(socket, up);
    const upReq = up.mod.request(up.options);
    let upgraded = false;
    upReq.on('upgrade', (upRes, upSocket: Duplex, upHead: Buffer) => {
      upgraded = true;
      socket.write(responseHead(101, upRes.statusMessage ?? 'Switching Protocols', upRes.rawHeaders, { keepUpgrade: true }));
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      void relay(socket, upSocket).then((r) => this.log.debug({ path: req.url?.split('?')[0], bytesIn: r.aToB, bytesOut: r.bToA, error: r.error?.message }, 'kube upgrade closed'));
    });
    upReq.on('response', (upRes) => {
      // Refused (403, 400…): relay the API server's answer as it is, then close.
      if (upRes.statusCode === 401) this.creds.invalidate();
      socket.write(responseHead(upRes.statusCode ?? 502, upRes.statusMessage ?? '', upRes.rawHeaders, { keepUpgrade: false }));
      upRes.pipe(socket);
    });
    upReq.on('error', (err) => writeStatusToSocket(socket, kubeStatus(503, `warren agent: cannot reach the API server ${up.creds.base.origin}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    socket.once('close', () => upgraded || upReq.destroy());
    upReq.end();
  }
}

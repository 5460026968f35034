/**
 * The hub's composition root: key material, store, tunnels, policy, audit, and one HTTPS port that
 * serves agents (ALPN warren/1), HTTP CONNECT, the admin API, /metrics, /healthz and /readyz.
 * It owns every listener; doors only get sockets.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { constants as cryptoConstants } from 'node:crypto';
import { once } from 'node:events';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { openStore } from '../store/open.js';
import { PolicyCache } from './policyCache.js';
import type { Store } from '../store/store.js';
import { ALPN, HUB_ALPN, UP_ALPN } from '../tunnel/protocol.js';
import { issueHubPeerCert } from '../pki/pki.js';
import { VERSION } from '../shared/version.js';
import { lockDataDir } from './dataDirLock.js';
import { formatHostPort, formatSource } from '../shared/hostPort.js';
import { AccessTokens, ADMIN_GROUP, isAdmin } from './accessTokens.js';
import { AgentGc } from './agentGc.js';
import { AgentTunnels } from './agentTunnels.js';
import { Api } from './api.js';
import { Audit } from './audit.js';
import { HubAuth } from './auth.js';
import type { HubConfig } from './config.js';
import { handleConnect } from '../doors/connect.js';
import type { Principal } from '../doors/door.js';
import { Enrollment } from './enroll.js';
import { loadHubPki, wantedSans } from './hubPki.js';
import { sendError, sendJson } from './httpJson.js';
import { countStoreCalls, HubMetrics } from './metrics.js';
import { HubOpener } from './opener.js';
import { Quotas } from './quotas.js';
import { Forwards, type HubPort } from './forwards.js';
import { ExternalServices } from './externalServices.js';
import { ChangeFeed } from './changeFeed.js';
import { HubMesh, newHubId } from './hubMesh.js';
import { startDoorListeners } from './doorListeners.js';
import { HandshakeQueue } from './handshakeQueue.js';
import { InFlight } from './inFlight.js';
import { createKubeDoor } from './kube/kubeDoor.js';
import { ExternalJwt } from './externalJwt.js';
import { WebUi } from './ui/webUi.js';
import { SHELL_PATH, WebShell } from './ui/webShell.js';

export const METRICS_GROUP = 'warren:metrics';

/**
 * A handshake holding one of the --max-handshakes places longer than this is waiting on its client, not
 * on the hub (in a 1,000-agent reconnect storm on 2 cores they took at most 0.3 s): it stops counting.
 */
const HANDSHAKE_LEASE_MS = 2_000;

/**
 * A stopping hub waits this long at most for a request on a connection that finished its TLS handshake
 * before the stop and sent none yet (a client's request is usually right behind its handshake; a
 * browser's spare connection may never send one).
 */
const FIRST_REQUEST_GRACE_MS = 1_000;

export interface Hub {
  /** The URL agents and clients use. */
  readonly url: string;
  /** The bound address of the main port. */
  readonly address: net.AddressInfo;
  readonly caPin: string;
  readonly caPath: string;
  readonly adminTokenPath: string;
  /** True on the first start of this data dir. */
  readonly firstStart: boolean;
  readonly store: Store;
  readonly tunnels: AgentTunnels;
  readonly enrollment: Enrollment;
  readonly tokens: AccessTokens;
  readonly opener: HubOpener;
  readonly auth: HubAuth;
  readonly audit: Audit;
  readonly metrics: HubMetrics;
  readonly log: Logger;
  /** The SOCKS5 door's bound address (--socks-listen), when enabled. */
  readonly socksAddress: net.AddressInfo | undefined;
  /**
   * Stops accepting, drains tunnels (GOAWAY, open streams may finish), closes the store. With
   * `delayMs` (SIGTERM: --shutdown-delay) it first goes on serving that long with /readyz answering 503;
   * a call without one meanwhile ends the delay.
   */
  close(options?: { readonly delayMs?: number }): Promise<void>;
}

function defaultPublicHost(listenHost: string): string {
  return listenHost === '0.0.0.0' || listenHost === '::' ? os.hostname() : listenHost;
}

export async function startHub(config: HubConfig, log: Logger): Promise<Hub> {
  const publicHost = config.publicUrl ? new URL(config.publicUrl).hostname.replace(/^\[|\]$/g, '') : defaultPublicHost(config.listen.host);
  const unlockDataDir = lockDataDir(config.dataDir);
  const pki = await loadHubPki(config.dataDir, {
    sans: wantedSans(publicHost, config.tlsSans),
    tlsCertFile: config.tlsCertFile,
    tlsKeyFile: config.tlsKeyFile,
  });
  const caPath = path.join(config.dataDir, 'ca.crt');
  const metrics = new HubMetrics();
  // Grants and tokens from memory (no query on a stream's way), other hubs told of this one's changes.
  const policy = new PolicyCache(countStoreCalls(await openStore(config.store, log.child({ component: 'store' })), metrics), () => void feed.publish({ kind: 'policy' }));
  const store: Store = policy.store;
  const tokens = new AccessTokens(store, pki.signingKey, pki.verifyKey, `w:${pki.caPin.slice(7, 19)}`);
  const adminTokenPath = path.join(config.dataDir, 'admin.token');
  if (!fs.existsSync(adminTokenPath)) {
    const admin = await tokens.issue({ user: 'admin', groups: [ADMIN_GROUP], ttlMs: null, createdBy: 'hub' });
    fs.writeFileSync(adminTokenPath, admin.token + '\n', { mode: 0o600 });
  }

  const audit = new Audit(store, log);
  // Throws WARREN_E_CONFIG at start-up when --jwt-public-key is unusable.
  const jwt = config.jwt ? ExternalJwt.fromFile(config.jwt.publicKeyFile, config.jwt) : undefined;
  if (jwt) log.info({ alg: jwt.alg, doors: jwt.policy.doors, trustNames: jwt.policy.trustNames }, 'trusting external JWTs signed by --jwt-public-key');
  const auth = new HubAuth(tokens, jwt?.issuer());
  const tunnels = new AgentTunnels({
    store,
    log: log.child({ component: 'tunnels' }),
    pingIntervalMs: config.pingIntervalMs,
    onEvent: (e) => {
      if (e.kind === 'connected') metrics.agentConnects.inc();
      if (e.kind === 'refused') metrics.agentRefusals.inc();
      metrics.agentsConnected.set(tunnels.size);
      void audit.record({ kind: 'agent', agent: e.agent, result: e.kind === 'refused' ? 'denied' : 'ok', reason: `${e.kind}: ${e.reason}`, source: e.source });
    },
  });
  await tunnels.load();
  // Other hubs on the same store: leases, where each agent is, relays (one hub alone finds no other).
  const hubId = newHubId();
  const peerCert = await issueHubPeerCert(pki.ca, hubId);
  let relayUrl = '';
  const mesh: HubMesh = new HubMesh({
    id: hubId, store, tunnels, log: log.child({ component: 'hubs' }), leaseMs: config.hubLeaseMs, relayUrl: () => relayUrl,
    peerTls: { certPem: peerCert.certPem, keyPem: peerCert.keyPem, caPem: pki.ca.certPem }, dialTimeoutMs: config.dialTimeoutMs,
    pingIntervalMs: config.pingIntervalMs, publish: (change): Promise<void> => feed.publish(change),
  });
  const agentGc = config.agentGcAfterMs === undefined ? undefined : new AgentGc({ afterMs: config.agentGcAfterMs, store, tunnels, audit, log: log.child({ component: 'agent-gc' }) });
  let url = '';
  const enrollment = new Enrollment({ store, ca: pki.ca, caPin: pki.caPin, hubUrl: () => url, certTtlMs: config.agentCertTtlMs });
  const opener = new HubOpener({
    tunnels: mesh, store, audit, metrics, log: log.child({ component: 'opener' }), dialTimeoutMs: config.dialTimeoutMs, quotas: new Quotas(config.quotas),
  });
  // multikube routing by `ctx` only where external JWTs are a kube credential at all.
  const kube = createKubeDoor({ jwt: jwt?.policy.doors.includes('kube') ? jwt : undefined, opener, store, tunnels: mesh, auth, audit, log });
  // What the hub listens on: as configured until bound, then as bound (port 0 becomes the real port).
  let hubPorts: HubPort[] = [
    { ...config.listen, flag: '--listen' },
    ...(config.socksListen ? [{ ...config.socksListen, flag: '--socks-listen' }] : []),
  ];
  const forwards = new Forwards({
    store, opener, audit, sessions: tunnels, log: log.child({ component: 'forwards' }), pingIntervalMs: config.pingIntervalMs, hubPorts: () => hubPorts,
    holdsHubEntries: () => mesh.isLeader, entryHub: (agent) => (agent === null ? mesh.hubEntriesHolder() : mesh.hubOf(agent)), changed: () => void feed.publish({ kind: 'forwards' }),
  });
  await forwards.start();
  const externalServices = new ExternalServices({ store, forwards, sessions: tunnels });
  // Another hub's change: the streams it no longer allows close here too, its removed agents' tunnels drop.
  const feed: ChangeFeed = new ChangeFeed(store, async (change): Promise<unknown> => {
    if (change.kind === 'forwards') return forwards.sync();
    if (change.kind === 'policy') return policy.invalidate();
    if (change.kind !== 'revoke') return mesh.changed(change);
    // Before anything is re-checked: a revoke arrives after the write that caused it.
    policy.invalidate();
    await opener.revoke(change.why);
    for (const name of tunnels.names()) if (!(await store.getAgent(name))) tunnels.forget(name);
  }, log.child({ component: 'changes' }));
  const api = new Api({
    store, auth, tokens, tunnels, mesh, enrollment, audit, ca: pki.ca, caPem: pki.ca.certPem, version: VERSION, hubUrl: () => url, caPin: pki.caPin, forwards, externalServices, kubeRoutes: kube.apiRoutes,
    maxUserCertTtlMs: config.maxUserCertTtlMs, revoke: async (why) => (await feed.publish({ kind: 'revoke', why }), opener.revoke(why)), log: log.child({ component: 'api' }),
  });

  const ui = new WebUi({ auth, tunnels, caPem: pki.ca.certPem, hubUrl: () => url, log: log.child({ component: 'ui' }) });
  const shell = new WebShell({ sessions: ui.sessions, opener, audit, log: log.child({ component: 'web-shell' }) });

  const proxyAuth = async (req: http.IncomingMessage): Promise<Principal> => {
    try {
      return await auth.fromHttp(req.headers['proxy-authorization'], req.socket, 'connect');
    } catch (err) {
      metrics.authFailures.inc({ door: 'connect' });
      throw err;
    }
  };

  const httpServer = http.createServer({
    headersTimeout: config.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    maxHeaderSize: 16 * 1024,
    connectionsCheckingInterval: Math.min(1000, config.headerTimeoutMs),
  });
  // This server never listens (the TLS server hands it sockets), and Node only starts the connection
  // tracking that enforces headersTimeout (and lets closeAllConnections work) on 'listening'. Without
  // this a slowloris client that drips header bytes is never cut off.
  httpServer.emit('listening');
  // What a stopping hub answers before it drops connections (see close()): a connection accepted before
  // its listener closed, until its handshake ends; then each request until it is answered, a CONNECT or
  // Upgrade until its socket closes (all within the one drain deadline).
  const inFlight = new InFlight();
  /** HTTP connections that finished their handshake and have sent no request yet, counted in inFlight. */
  const unasked = new Map<net.Socket, () => void>();
  /** Set once a stopping hub stops waiting for first requests (FIRST_REQUEST_GRACE_MS). */
  let unaskedGraceOver = false;
  const requestArrived = (socket: net.Socket) => {
    unasked.get(socket)?.();
    unasked.delete(socket);
  };
  httpServer.on('request', (req, res) => {
    requestArrived(req.socket);
    res.once('close', inFlight.begin());
    // While the hub stops, no connection is kept for another request.
    if (!listening) res.shouldKeepAlive = false;
    // Kubernetes first: multikube-style requests (a JWT with `ctx`) may use /api/v1/… paths too.
    if (kube.router.claims(req)) return kube.router.handleRequest(req, res);
    const url = requestUrl(req.url ?? '/');
    if (!url) return sendError(res, new WarrenError('WARREN_E_BAD_REQUEST', 'the request target is not a path'), log);
    if (url.pathname.startsWith('/api/v1/')) return void ui.sessions.authorizeApi(req).then(() => api.handle(req, res, url), (err: unknown) => sendError(res, err, log));
    if (WebUi.claims(url.pathname)) return ui.handle(req, res, url);
    if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (url.pathname === '/readyz') {
      return void store.ping().then(
        // close() under way (while a --shutdown-delay runs, the hub still serves): stopping.
        () => sendJson(res, listening ? 200 : 503, { status: listening ? 'ready' : closing ? 'stopping' : 'starting' }),
        (err: unknown) => sendError(res, new WarrenError('WARREN_E_UNAVAILABLE', 'store is not reachable', undefined, { cause: err }), log),
      );
    }
    if (url.pathname === '/metrics') {
      return void auth
        .fromHttp(req.headers.authorization, req.socket, 'api')
        .then(async (p) => {
          if (!isAdmin(p) && !p.groups.includes(METRICS_GROUP)) throw new WarrenError('WARREN_E_FORBIDDEN', `/metrics needs group ${METRICS_GROUP} or ${ADMIN_GROUP}`);
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(await metrics.registry.metrics());
        })
        .catch((err: unknown) => sendError(res, err, log));
    }
    sendError(res, new WarrenError('WARREN_E_NOT_FOUND', `nothing at ${url.pathname}; the admin API is under /api/v1/`), log);
  });
  httpServer.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    requestArrived(req.socket);
    inFlight.untilClose(socket);
    socket.setNoDelay(true);
    if (req.url?.split('?')[0] === SHELL_PATH) return shell.handleUpgrade(req, socket, head);
    if (!kube.router.handleUpgrade(req, socket, head)) kube.rejectUpgrade(socket);
  });
  httpServer.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    requestArrived(req.socket);
    inFlight.untilClose(socket);
    socket.setNoDelay(true);
    void handleConnect(req, socket, head, { opener, authenticate: proxyAuth, log });
  });

  const tlsServer = tls.createServer({
    key: pki.serverKeyPem,
    cert: pki.serverCertPem + pki.ca.certPem,
    ca: [pki.ca.certPem],
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: [ALPN, UP_ALPN, HUB_ALPN, 'http/1.1'],
    minVersion: 'TLSv1.2',
    handshakeTimeout: config.headerTimeoutMs,
    // No TLS session tickets: nothing here resumes sessions (agents and CLI runs start fresh), and with
    // TLS 1.3 each connection kept ~5–12 KiB more native memory for them (measured: 10,000 agent tunnels,
    // docs/benchmarks.md), besides encrypting two tickets per handshake for nobody.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  });
  // The port is a plain TCP listener: sockets reach the TLS server through a queue that bounds what an
  // unauthenticated peer holds (per-source count, ClientHello deadline) and caps the handshakes in
  // progress (a reconnect storm completes in turn). The handshake timeout starts when the handshake
  // does; the wait in the queue is bounded by the same duration.
  const handshakes = new HandshakeQueue(tlsServer, {
    max: config.maxHandshakes, maxWaitMs: config.headerTimeoutMs, leaseMs: HANDSHAKE_LEASE_MS,
    clientHelloTimeoutMs: config.clientHelloTimeoutMs, maxPendingPerSource: config.maxPendingPerSource,
  });
  const handshaking = new WeakMap<net.Socket, () => void>();
  const listener = net.createServer((socket) => {
    handshaking.set(socket, inFlight.untilClose(socket));
    handshakes.add(socket);
  });
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    // CONNECT streams carry TCP half-close end to end, so from now on a client's EOF must not close our
    // side. During the handshake it does: a client that gave up frees its place at once.
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    if (socket.alpnProtocol === ALPN) tunnels.accept(socket);
    else if (socket.alpnProtocol === UP_ALPN) forwards.acceptUplink(socket);
    else if (socket.alpnProtocol === HUB_ALPN) mesh.accept(socket);
    else {
      // Counted until its first request from here on.
      if (!unaskedGraceOver) {
        unasked.set(socket, inFlight.untilClose(socket));
        socket.once('close', () => unasked.delete(socket));
      }
      httpServer.emit('connection', socket);
    }
    // The handshake's count ends last, so that a stopping hub never sees zero in between. Node's TLS
    // server keeps the socket it was given as _parent (as handshakeQueue.ts relies on too).
    const raw = (socket as unknown as { _parent?: net.Socket })._parent;
    if (raw) handshaking.get(raw)?.();
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message, source: formatSource(socket) }, 'TLS handshake failed');
    socket.destroy();
  });

  listener.listen(config.listen.port, config.listen.host);
  // once(listener, 'listening') itself rejects with the raw error when 'error' comes first.
  await once(listener, 'listening').catch((err: unknown) => Promise.reject(listenError(err as Error, config.listen)));
  // The SOCKS5 port and the CONNECT unix socket, before "hub listening" so that line means every door is up.
  const doorListeners = await startDoorListeners({
    socksListen: config.socksListen, connectUds: config.connectUds, opener, authenticator: auth, log, handshakeTimeoutMs: config.headerTimeoutMs,
    maxPendingPerSource: config.maxPendingPerSource,
    onAuthFailure: (door) => metrics.authFailures.inc({ door }),
  }).catch((err: unknown) => (listener.close(), Promise.reject(err)));
  let listening = true;
  const address = listener.address() as net.AddressInfo;
  const socksBound = doorListeners.socksAddress;
  hubPorts = [
    { host: address.address, port: address.port, flag: '--listen' },
    ...(socksBound ? [{ host: socksBound.address, port: socksBound.port, flag: '--socks-listen' }] : []),
  ];
  url = config.publicUrl ?? `https://${formatHostPort({ host: publicHost, port: address.port })}`;
  relayUrl = config.relayUrl ?? `https://${formatHostPort({ host: defaultPublicHost(config.listen.host), port: address.port })}`;
  // The hub-side forward entries listen on the one hub that holds them, and move when it goes.
  mesh.on('leader', () => void forwards.sync().catch((err: unknown) => log.error({ err: (err as Error).message }, 'moving the hub-side forward entries failed')));
  await mesh.start();
  await forwards.sync();
  log.info({ listen: formatHostPort({ host: address.address, port: address.port }), url, caPin: pki.caPin }, 'hub listening');

  let closing: Promise<void> | undefined;
  let endDelay: (() => void) | undefined;
  return {
    url, address, caPin: pki.caPin, caPath, adminTokenPath, firstStart: pki.created, store, tunnels, enrollment, tokens, opener, auth, audit, metrics, log,
    socksAddress: doorListeners.socksAddress,
    close(options = {}) {
      // A close() without a delay while one waits out its delay (a Ctrl-C after the SIGTERM) cuts it short.
      if (!options.delayMs) endDelay?.();
      closing ??= (async () => {
        listening = false;
        if (options.delayMs) {
          // Not ready any more, still serving: a load balancer that checks /readyz takes this hub out
          // before its listeners close (a connection that reaches a closed listener is reset).
          log.info({ delayMs: options.delayMs }, 'not ready; serving on until the shutdown delay is over');
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, options.delayMs);
            endDelay = () => (clearTimeout(timer), resolve());
          });
        }
        listener.close();
        doorListeners.stopAccepting();
        // One deadline for what clients started: after it, what is still open is cut (opener.stop()).
        const deadline = performance.now() + config.drainTimeoutMs;
        const left = () => Math.max(0, deadline - performance.now());
        // What a load balancer sent here before the listeners closed is served, not dropped: handshakes
        // under way, requests and streams being opened (a connection's first request gets a short grace).
        const grace = setTimeout(() => {
          unaskedGraceOver = true;
          for (const end of unasked.values()) end();
        }, Math.min(left(), FIRST_REQUEST_GRACE_MS));
        const answered = Promise.all([inFlight.settled(left()), doorListeners.answered(left())]).finally(() => clearTimeout(grace));
        const forwardsClosed = forwards.close(config.drainTimeoutMs);
        await agentGc?.close();
        await tunnels.drain(config.drainTimeoutMs);
        await forwardsClosed;
        await answered;
        // Until here other hubs' changes are still acted on: where this hub's agents went, revocations.
        // Streams of this hub's clients to agents elsewhere (or waiting for an agent that is moving) may finish too.
        await opener.drained(left());
        // What is still open now ends with an error its client sees (a refusal, or a reset).
        await opener.stop();
        await mesh.close(config.drainTimeoutMs);
        feed.close();
        opener.close();
        // Connections accepted before the listener closed had their handshake and their request served
        // meanwhile (a load balancer had already sent them here); what is left now is dropped.
        handshakes.close();
        httpServer.closeAllConnections();
        doorListeners.destroyConnections();
        forwards.resetConnections();
        await audit.drain();
        await store.close();
        unlockDataDir();
        log.info('hub stopped');
      })();
      return closing;
    },
  };
}

/**
 * The request target as a URL, or undefined when it does not parse. An origin-form target is appended
 * to the origin rather than resolved against it: resolved, `//x` names a host, and `//` threw (a
 * TypeError out of the request handler, which took the hub down).
 */
function requestUrl(target: string): URL | undefined {
  try {
    return new URL(target.startsWith('/') ? `https://hub${target}` : target, 'https://hub');
  } catch {
    return undefined;
  }
}

function listenError(err: Error, listen: { host: string; port: number }): WarrenError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = formatHostPort(listen);
  if (code === 'EADDRINUSE') return new WarrenError('WARREN_E_CONFIG', `cannot listen on ${where}: the address is in use; pick another --listen (port 0 picks a free one)`);
  if (code === 'EACCES') return new WarrenError('WARREN_E_CONFIG', `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`);
  if (code === 'EADDRNOTAVAIL') return new WarrenError('WARREN_E_CONFIG', `cannot listen on ${where}: no such local address`);
  return asWarrenError(err);
}

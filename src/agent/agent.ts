/**
 * The agent: dials out to the hub (never accepts connections), serves HTTP/2 on that one TLS socket so
 * the hub can open streams toward it, keeps it alive with PINGs, and comes back by itself with capped
 * exponential backoff and full jitter whenever the tunnel drops. A hub that refuses the agent's
 * identity (removed agent) or its claims (clusters, routes outside its join token's authority) stops
 * it for good: retrying could not help.
 */
import http2, { type ServerHttp2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import os from 'node:os';
import type tls from 'node:tls';
import { EventEmitter } from 'node:events';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { Backoff } from '../tunnel/backoff.js';
import { serveAgentSession } from '../tunnel/agentSession.js';
import { ALPN, H2_SETTINGS, INFO_PATH, KUBE_SERVICE, LISTENERS_PATH, MAX_SESSION_MEMORY_MB, SERVICE_HEADER, SOURCE_IP_HEADER, type AgentInfo, type Refusal } from '../tunnel/protocol.js';
import { VERSION } from '../shared/version.js';
import { dialHub, hubSecureContext, proxyFor, type HubEndpoint } from '../tunnel/dialHub.js';
import { AllowList } from './allowList.js';
import type { AgentConfig } from './config.js';
import { handleConnectStream } from './dialer.js';
import { refuseStream } from '../tunnel/refusalHeaders.js';
import { parseJoinToken } from '../shared/joinToken.js';
import { dataDirStore, enroll, joinTokenOrThrow, renew, renewalDelayMs, type AgentIdentity, type IdentityStore } from './identity.js';
import { EntryListeners } from './listeners.js';
import { checkOwnedSourceIps } from './sourceIps.js';
import { Uplink } from '../tunnel/uplink.js';
import { abortSession } from '../tunnel/relay.js';
import { drainSessions } from '../tunnel/sessions.js';
import { KubeCredentials } from './kube/credentials.js';
import { KubeProxy } from './kube/kubeProxy.js';
import { secretIdentityStore } from './kube/identitySecret.js';

/** A tunnel that stayed up this long resets the backoff. */
const STABLE_MS = 10_000;

export interface Agent extends EventEmitter {
  readonly name: string;
  /** The hub URL it dials (--hub, else the one its identity was enrolled with). */
  readonly hubUrl: URL;
  /** Resolves when the agent stops: after stop(), or rejects on a fatal refusal from the hub. */
  readonly done: Promise<void>;
  readonly connected: boolean;
  /**
   * Stops the agent. With `drainMs` (SIGTERM: --drain-timeout) it drains first: GOAWAY to the hub on the
   * tunnel and the uplink, so no new stream comes, while the open ones (kube requests, forwards, shells)
   * may finish for up to `drainMs`; what is left then is reset. Without it everything is cut at once.
   */
  stop(options?: { readonly drainMs?: number }): Promise<void>;
}

export async function startAgent(config: AgentConfig, log: Logger): Promise<Agent> {
  const hubOverride = config.hub ? new URL(config.hub) : undefined;
  // A gateway's addresses are checked before joining: one the host does not own fails at start-up.
  checkOwnedSourceIps(config.sourceIps);
  // The member cluster's credentials are checked before joining: a broken kubeconfig fails at start-up.
  let kube: KubeProxy | undefined;
  if (config.kube) {
    const creds = await KubeCredentials.load(config.kube);
    kube = new KubeProxy(config.clusters, creds, log.child({ component: 'kube' }));
    log.info({ cluster: config.clusters[0], server: creds.server.origin, source: config.kube.kind }, 'serving the Kubernetes API of the cluster');
  }
  // In a pod with --identity-secret the identity outlives the pod: a Secret, keyed by the agent's name.
  const store = config.identitySecret !== undefined ? await secretIdentityStore(config.identitySecret, config.name) : dataDirStore(config.dataDir);
  let identity = await store.load();
  if (identity && config.nameGiven && identity.name !== config.name) {
    log.warn({ stored: identity.name, flag: config.name }, `${store.where} holds another agent name; using the stored identity`);
  }
  if (!identity) {
    if (!config.token) {
      throw new WarrenError('WARREN_E_CONFIG', `no agent identity in ${store.where} and no join token: run \`warren join-token create\` on the hub side and start with --token-file FILE or WARREN_JOIN_TOKEN set`);
    }
    const proxyUrl = proxyFor(hubOverride ?? new URL(joinTokenOrThrow(config.token).hubUrl), config);
    identity = await enroll({ token: config.token, name: config.name, labels: config.labels, store, hubOverride: config.hub, proxy: proxyUrl });
    log.info({ agent: identity.name, hub: identity.hubUrl.origin }, `enrolled: identity stored in ${store.where}; later starts need no token`);
  } else if (config.identitySecret !== undefined) {
    log.info({ agent: identity.name }, `identity of ${identity.name} loaded from ${store.where}`);
  }
  const agent = new AgentRunner(identity, store, config, log.child({ agent: identity.name }), hubOverride, kube);
  agent.start();
  return agent;
}

class AgentRunner extends EventEmitter implements Agent {
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (err: Error) => void;
  private stopped = false;
  private session: ServerHttp2Session | undefined;
  /** The identity's CA, certificate and key, parsed once for every dial (again when renewed). */
  private secureContext!: tls.SecureContext;
  /** Ends the current tunnel: its session and its socket. */
  private dropTunnel: (() => void) | undefined;
  /** When the hub took the current tunnel (its first stream). */
  private upSince: number | undefined;
  private readonly backoff: Backoff;
  private readonly allow: AllowList;
  private readonly h2 = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
  private wake: (() => void) | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Forward entries the hub asked this agent to hold (PUT /warren/v1/listeners), and their uplink. */
  private readonly entries: EntryListeners;
  private readonly uplink: Uplink;
  /**
   * The stops under way (drain, then cut what is left); `done` waits for them, since the process exits
   * right after it, and a connection it then leaves to the kernel ends with a FIN, which its peer would
   * take for a complete stream.
   */
  private tearingDown: Promise<void> = Promise.resolve();

  constructor(
    private identity: AgentIdentity,
    /** Where the identity is kept (data dir or Secret): saved again on re-join and renewal. */
    private readonly store: IdentityStore,
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly hubOverride: URL | undefined,
    /** The Kubernetes door's agent side (--kube), if this agent serves a cluster. */
    private readonly kube?: KubeProxy,
  ) {
    super();
    this.useIdentity(identity);
    this.done = new Promise((resolve, reject) => ((this.resolveDone = resolve), (this.rejectDone = reject)));
    this.done.catch(() => undefined);
    this.backoff = new Backoff({ baseMs: 250, capMs: config.reconnectMaxMs });
    this.allow = new AllowList(config.allow);
    this.h2.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.uplink = new Uplink({
      endpoint: () => this.endpoint(),
      pingIntervalMs: config.pingIntervalMs,
      log,
    });
    this.entries = new EntryListeners({ uplink: this.uplink, log });
  }

  get name(): string {
    return this.identity.name;
  }

  get connected(): boolean {
    return Boolean(this.session && !this.session.closed && !this.session.destroyed);
  }

  get hubUrl(): URL {
    return this.hubOverride ?? this.identity.hubUrl;
  }

  private useIdentity(identity: AgentIdentity): void {
    this.identity = identity;
    this.secureContext = hubSecureContext({ ca: identity.caPem, cert: identity.certPem, key: identity.keyPem });
  }

  private endpoint(): HubEndpoint {
    return { url: this.hubUrl, secureContext: this.secureContext, proxy: proxyFor(this.hubUrl, this.config) };
  }

  start(): void {
    this.scheduleRenewal();
    void this.loop();
  }

  private async loop(): Promise<void> {
    // The agent runs until it is stopped, and this holds the process's event loop meanwhile. Without it
    // a tunnel whose socket Node's HTTP/2 layer had stopped reading (seen with a hub gone under load,
    // nothing pending on the socket) left nothing alive (the keepalive's timer is unref'd: hubs share
    // it), and the process exited with code 13 instead of its keepalive noticing the dead hub.
    const hold = setInterval(() => undefined, 2 ** 31 - 1);
    try {
      await this.run();
    } finally {
      clearInterval(hold);
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.upSince = undefined;
      /** Why the last attempt ended badly, for the line that says what the agent waits for. */
      let problem: { code: string; text: string } | undefined;
      try {
        const refusal = await this.runOnce();
        if (refusal) {
          // Retrying cannot help either: the hub keeps refusing until an admin acts.
          if (refusal.code === 'WARREN_E_AGENT_REVOKED' && this.freshToken()) {
            // Removed on the hub, and started with a join token other than the one it joined with: the
            // admin means it to join again, so that token replaces the identity in the data dir.
            await this.rejoin(refusal);
            continue;
          }
          if (refusal.code === 'WARREN_E_AGENT_REVOKED' || refusal.code === 'WARREN_E_AGENT_CLAIM_DENIED') {
            const message = refusal.code === 'WARREN_E_AGENT_REVOKED'
              ? `${refusal.message.replace(/; join again with a new token$/, '')}: to join again, start it with a new join token (\`warren join-token create\`, then --token-file FILE or WARREN_JOIN_TOKEN), which replaces the identity in ${this.store.where}`
              : refusal.message;
            this.stopped = true;
            this.rejectDone(new WarrenError(refusal.code, message));
            return;
          }
          problem = { code: refusal.code, text: `the hub refused the tunnel: ${refusal.message}` };
        }
      } catch (err) {
        const e = asWarrenError(err);
        problem = { code: e.code, text: e.code === 'WARREN_E_INTERNAL' ? (err as Error).message : e.message };
      }
      if (this.stopped) break;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- runOnce() sets upSince; the narrowing from the assignment above outlives the await
      if (this.upSince !== undefined && Date.now() - this.upSince > STABLE_MS) this.backoff.reset();
      const delay = this.backoff.next();
      const wait = delay < 1000 ? `${delay}ms` : `${(delay / 1000).toFixed(1)}s`;
      if (problem) this.log.warn({ code: problem.code, delayMs: delay }, `waiting ${wait} before dialling ${this.hubUrl.origin} again: ${problem.text}`);
      else this.log.info({ delayMs: delay }, `tunnel down; dialling ${this.hubUrl.origin} again in ${wait}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => (clearTimeout(timer), resolve());
      });
      this.wake = undefined;
    }
    // Not before the stops under way are done (the tunnel can close long before the uplink's streams end).
    await this.tearingDown;
    this.resolveDone();
  }

  /**
   * One tunnel from dial to close; resolves with the hub's refusal, if it sent one. The dial (TLS
   * handshake) has a deadline, and so has every step of the session after it.
   */
  /** A join token was given, and it is not the one the current identity was enrolled with. */
  private freshToken(): boolean {
    const token = this.config.token;
    if (!token) return false;
    const id = parseJoinToken(token)?.id;
    return id === undefined || id !== this.identity.joinTokenId;
  }

  /** Enrolls again with the given join token; a token the hub refuses stops the agent, saying why. */
  private async rejoin(refusal: Refusal): Promise<void> {
    const name = this.config.nameGiven ? this.config.name : this.identity.name;
    this.log.warn({ code: refusal.code }, `${refusal.message}; joining again as ${name} with the join token given, replacing the identity in ${this.store.where}`);
    try {
      const next = await enroll({
        token: this.config.token!, name, labels: this.config.labels, store: this.store, hubOverride: this.config.hub, proxy: proxyFor(this.hubUrl, this.config),
      });
      this.useIdentity(next);
      this.scheduleRenewal();
    } catch (err) {
      const e = asWarrenError(err);
      this.stopped = true;
      this.rejectDone(new WarrenError(e.code, `agent "${this.identity.name}" was removed from the hub, and the join token given cannot join it again: ${e.message}`));
    }
  }

  private async runOnce(): Promise<Refusal | undefined> {
    const socket = await dialHub(this.endpoint(), { alpn: [ALPN] });
    if (socket.alpnProtocol !== ALPN) {
      socket.destroy();
      throw new WarrenError('WARREN_E_HUB_UNREACHABLE', `${this.hubUrl.host} does not speak ${ALPN}: is it a Warren hub (and no TLS-terminating proxy in between)?`);
    }
    // Closed already (e.g. in the read that completed the handshake): a session on it would never close.
    if (socket.destroyed || socket.readableEnded) {
      socket.destroy();
      throw new WarrenError('WARREN_E_HUB_UNREACHABLE', `${this.hubUrl.host} closed the connection right after the TLS handshake`);
    }
    // The "joined" line is logged once per tunnel (the hub asks for info once per session), so a reconnect
    // after a hub restart or a network drop is visible in the log, not only the first connect.
    this.announced = false;
    return new Promise<Refusal | undefined>((resolve) => {
      const { session, drop } = serveAgentSession(this.h2, socket, {
        pingIntervalMs: this.config.pingIntervalMs,
        log: this.log,
        onTaken: () => void (this.upSince = Date.now()),
        onClosed: (refusal) => {
          this.entries.closeAll();
          if (this.session === session) this.session = this.dropTunnel = undefined;
          if (!refusal) this.log.info('tunnel closed');
          this.emit('disconnected');
          resolve(refusal);
        },
      });
      this.session = session;
      this.dropTunnel = drop;
      this.emit('session');
    });
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const method = headers[':method'];
    if (method === 'GET' && headers[':path'] === INFO_PATH) {
      const info: AgentInfo = {
        name: this.identity.name, version: VERSION, hostname: os.hostname(), labels: this.config.labels,
        routes: this.config.routes, clusters: this.config.clusters, allow: this.config.allow, sourceIps: this.config.sourceIps,
      };
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(info));
      if (!this.announced) {
        this.announced = true;
        this.log.info({ hub: this.hubUrl.origin }, this.joinedLine());
        this.joinedBefore = true;
      }
      this.emit('connected');
      return;
    }
    if (method === 'PUT' && headers[':path'] === LISTENERS_PATH) {
      void this.entries.handlePut(stream).catch((err: unknown) => refuseStream(stream, asWarrenError(err)));
      return;
    }
    if (method === 'CONNECT' && headers[SERVICE_HEADER] !== undefined) {
      const service = String(headers[SERVICE_HEADER]);
      if (service === KUBE_SERVICE && this.kube) return this.kube.serve(stream, (headers[':authority'] ?? ''));
      return refuseStream(stream, new WarrenError('WARREN_E_NOT_FOUND', `agent "${this.identity.name}" does not serve "${service.slice(0, 40)}"${service === KUBE_SERVICE ? ': it was started without --kube' : ''}`));
    }
    if (method === 'CONNECT') {
      const sourceIp = headers[SOURCE_IP_HEADER];
      const dial = { allow: this.allow, dialTimeoutMs: this.config.dialTimeoutMs, log: this.log, sourceIps: this.config.sourceIps };
      void handleConnectStream(stream, (headers[':authority'] ?? ''), dial, typeof sourceIp === 'string' ? sourceIp : undefined).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message }, 'stream handler failed');
        refuseStream(stream, asWarrenError(err));
      });
      return;
    }
    refuseStream(stream, new WarrenError('WARREN_E_NOT_FOUND', `agent: nothing at ${String(method)} ${String(headers[':path'])}`));
  }

  private announced = false;
  private joinedBefore = false;

  /** What a person needs to know once the tunnel is up: where, as whom, and how to reach this agent. */
  private joinedLine(): string {
    const name = this.identity.name;
    const reach = [`${name}:PORT`, `HOST.${name}.warren:PORT`, ...this.config.routes.map((r) => (r.startsWith('.') ? `HOST${r}:PORT` : `an address in ${r}`))];
    const clusters = this.config.kube ? `; kubectl via ${this.hubUrl.origin}/k8s/clusters/${this.config.clusters.join(',')}` : '';
    return `${this.joinedBefore ? 'rejoined' : 'joined'} ${this.hubUrl.origin} as ${name}; reach it as ${reach.slice(0, -1).join(', ')}${reach.length > 1 ? ' or ' : ''}${reach.at(-1)!}${clusters}`;
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => {
      renew(this.identity, this.store, proxyFor(this.hubUrl, this.config)).then(
        (next) => {
          this.useIdentity(next);
          this.log.info('agent certificate renewed');
          this.scheduleRenewal();
        },
        (err: unknown) => {
          this.log.warn({ err: asWarrenError(err).message }, 'certificate renewal failed; retrying in a minute');
          this.renewTimer = setTimeout(() => this.scheduleRenewal(), 60_000);
          this.renewTimer.unref();
        },
      );
    }, renewalDelayMs(this.identity.certPem));
    this.renewTimer.unref();
  }

  async stop(options: { readonly drainMs?: number } = {}): Promise<void> {
    // A second stop (Ctrl-C during a drain) has no drain: it cuts the first one short.
    const drainMs = this.stopped ? 0 : options.drainMs ?? 0;
    this.stopped = true;
    clearTimeout(this.renewTimer);
    const teardown = this.teardown(drainMs);
    this.tearingDown = Promise.all([this.tearingDown, teardown]).then(() => undefined);
    await teardown;
    await this.done.catch(() => undefined);
  }

  private async teardown(drainMs: number): Promise<void> {
    // No new forward connections; the uplink is sent GOAWAY (the ones under way go on).
    this.entries.closeAll();
    const sessions = [...(this.session ? [this.session] : []), ...this.uplink.sessions()];
    if (drainMs > 0 && sessions.length > 0) {
      this.log.info({ drainTimeoutMs: drainMs }, `stopping: the hub sends no new streams; open ones may finish within ${drainMs} ms`);
      const started = Date.now();
      await drainSessions(sessions, drainMs);
      this.log.info({ ms: Date.now() - started }, 'drained');
    }
    for (const s of this.uplink.sessions()) abortSession(s);
    this.entries.resetAll();
    this.kube?.close();
    this.dropTunnel?.();
    this.wake?.();
  }
}

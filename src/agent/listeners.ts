/**
 * The agent's forward entries: the listeners the hub asks for with `PUT /warren/v1/listeners` (the
 * whole set each time). The agent reconciles — closes what is gone or moved, opens what is new, keeps
 * what is unchanged — and reports per forward the address it bound or why it could not. Each accepted
 * connection becomes a CONNECT stream on the uplink to the hub, which checks the source against the
 * forward's allow-from and carries it to the target. The agent's own `--allow` list is not consulted:
 * it limits what the agent dials, and an entry dials nothing here; the admin who created the forward
 * chose the entry.
 *
 * Listeners live as long as the tunnel that asked for them: the agent closes them all when it drops,
 * and the hub pushes the set again when the agent is back.
 */
import net from 'node:net';
import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import { WarrenError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { formatHostPort, formatSource } from '../shared/hostPort.js';
import { describeBindError } from '../shared/forwardSpec.js';
import { abortStream, relay } from '../tunnel/relay.js';
import { EarlyData } from '../tunnel/earlyData.js';
import { SOURCE_HEADER, type ListenerReport, type ListenerSpec, type ListenerStatus } from '../tunnel/protocol.js';
import { decodeListenerSet, encodeListenerReport, MAX_LISTENER_BODY } from '../tunnel/listenerSet.js';
import { decodeRefusalHeaders, refuseStream } from '../tunnel/refusalHeaders.js';
import type { Uplink } from '../tunnel/uplink.js';

/**
 * How long the hub may take to answer a forward connection: well above its own deadlines for the
 * answer (a reconnecting gateway waited for, then the target's dial, each a few seconds).
 */
const ANSWER_TIMEOUT_MS = 60_000;

interface Held {
  readonly spec: ListenerSpec;
  readonly server: net.Server;
  readonly port: number;
  readonly address: string;
}

export interface EntryListenersOptions {
  readonly uplink: Pick<Uplink, 'session' | 'close'>;
  readonly log: Logger;
  /** How long the hub may take to answer a forward connection; 60 s unless given. */
  readonly answerTimeoutMs?: number;
}

export class EntryListeners {
  private readonly held = new Map<string, Held>();
  /** The connections accepted and not closed yet. */
  private readonly accepted = new Set<net.Socket>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: EntryListenersOptions) {}

  get size(): number {
    return this.held.size;
  }

  /** Serves `PUT /warren/v1/listeners` on the tunnel. */
  async handlePut(stream: ServerHttp2Stream): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_LISTENER_BODY) return stream.close(h2c.NGHTTP2_REFUSED_STREAM);
      chunks.push(chunk);
    }
    const set = decodeListenerSet(Buffer.concat(chunks));
    if (set.kind === 'error') return refuseStream(stream, new WarrenError('WARREN_E_BAD_REQUEST', 'agent: malformed listener set'));
    const report = await this.apply(set.value.listeners);
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(encodeListenerReport(report));
  }

  /** Reconciles to exactly `specs` (one reconcile at a time); reports every forward in `specs`. */
  apply(specs: readonly ListenerSpec[]): Promise<ListenerReport> {
    const run = this.queue.then(() => this.reconcile(specs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Closes every listener (the tunnel that asked for them is gone) and lets the uplink go. */
  closeAll(): void {
    for (const h of this.held.values()) h.server.close();
    if (this.held.size > 0) this.opts.log.info({ listeners: this.held.size }, 'forward entries closed');
    this.held.clear();
    this.opts.uplink.close();
  }

  /**
   * Resets every connection still open, at once (the agent's stop, when its drain is over). Not left to
   * the relays, which reset their client when their stream's 'close' comes: the process exits right after
   * the stop, possibly before those events run, and the kernel would then close the connections with a
   * FIN, which their clients would take for a complete stream.
   */
  resetAll(): void {
    for (const socket of this.accepted) abortStream(socket);
  }

  private async reconcile(specs: readonly ListenerSpec[]): Promise<ListenerReport> {
    const wanted = new Map(specs.map((s) => [s.forward, s]));
    // Close first, so a forward that moved onto a port another one just gave up can bind it.
    for (const [name, h] of this.held) {
      const w = wanted.get(name);
      if (w && w.host === h.spec.host && (w.port === 0 || w.port === h.port)) continue;
      h.server.close();
      this.held.delete(name);
      this.opts.log.info({ forward: name, listen: h.address }, 'forward entry closed');
    }
    const statuses = await Promise.all(specs.map((s) => this.ensure(s)));
    if (this.held.size === 0) this.opts.uplink.close();
    return { listeners: statuses };
  }

  private async ensure(spec: ListenerSpec): Promise<ListenerStatus> {
    const existing = this.held.get(spec.forward);
    if (existing) return { forward: spec.forward, listening: true, address: existing.address };
    const where = formatHostPort({ host: spec.host, port: spec.port });
    const server = net.createServer({ allowHalfOpen: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: spec.host, port: spec.port }, () => (server.off('error', reject), resolve()));
      });
    } catch (err) {
      const error = describeBindError(err as NodeJS.ErrnoException, where);
      this.opts.log.warn({ forward: spec.forward, reason: error.message }, 'forward entry cannot listen');
      return { forward: spec.forward, listening: false, error };
    }
    const bound = server.address() as net.AddressInfo;
    const held: Held = { spec, server, port: bound.port, address: formatHostPort({ host: bound.address, port: bound.port }) };
    server.on('connection', (socket: net.Socket) => void this.onConnection(held, socket));
    server.on('error', (err) => this.opts.log.warn({ forward: spec.forward, err: err.message }, 'forward entry listener error'));
    this.held.set(spec.forward, held);
    this.opts.log.info({ forward: spec.forward, listen: held.address }, 'forward entry listening');
    return { forward: spec.forward, listening: true, address: held.address };
  }

  private async onConnection(held: Held, socket: net.Socket): Promise<void> {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    this.accepted.add(socket);
    socket.once('close', () => this.accepted.delete(socket));
    const source = formatSource(socket);
    const log = this.opts.log.child({ forward: held.spec.forward, source });
    log.debug('forward connection accepted');
    let req;
    try {
      req = await this.openStream(held, source);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot reach the hub for a forward connection');
      return abortStream(socket);
    }
    req.on('error', () => undefined);
    log.debug({ stream: req.id }, 'forward connection sent to the hub');
    let answered = false;
    const cancel = () => req.close(h2c.NGHTTP2_CANCEL);
    socket.once('close', cancel);
    // The hub answers once its target is connected (its own dial deadlines are shorter); a hub that never
    // answers must not hold the client forever.
    const answerTimeoutMs = this.opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    const unanswered = setTimeout(() => {
      log.warn({ stream: req.id, waitedMs: answerTimeoutMs }, 'the hub did not answer the forward connection in time; closing it');
      req.close(h2c.NGHTTP2_CANCEL);
      abortStream(socket);
    }, answerTimeoutMs);
    // The client's first bytes go with the request; the hub holds them until its target is connected.
    const early = new EarlyData(socket);
    early.sendTo(req);
    req.once('close', () => {
      clearTimeout(unanswered);
      if (!answered) {
        log.debug({ stream: req.id, rstCode: req.rstCode }, 'forward stream closed before the hub answered');
        abortStream(socket);
      }
    });
    req.once('response', (h) => {
      answered = true;
      clearTimeout(unanswered);
      log.debug({ stream: req.id, status: h[':status'] }, 'the hub answered the forward connection');
      early.stop(true);
      socket.off('close', cancel);
      if (h[':status'] !== 200) {
        // The hub audited the refusal; the client sees its connection reset, like a closed port.
        const why = decodeRefusalHeaders(h, { code: 'WARREN_E_FORBIDDEN', message: `hub answered ${String(h[':status'])}` });
        log.info({ code: why.code, reason: why.message }, 'hub refused the forward connection');
        abortStream(socket);
        return;
      }
      if (socket.destroyed) return req.close(h2c.NGHTTP2_CANCEL);
      void relay(socket, req).then((c) => log.debug({ bytesIn: c.aToB, bytesOut: c.bToA, error: c.error?.message }, 'forward connection closed'));
    });
  }

  /** A CONNECT stream on the uplink; one retry on a fresh uplink if the cached one was already closing. */
  private async openStream(held: Held, source: string) {
    const headers = { ':method': 'CONNECT', ':authority': `${held.spec.forward}:${held.port}`, [SOURCE_HEADER]: source };
    for (let attempt = 0; ; attempt++) {
      const session = await this.opts.uplink.session();
      try {
        return session.request(headers, { endStream: false });
      } catch (err) {
        if (attempt > 0) throw err;
        session.destroy();
      }
    }
  }
}

/**
 * Admission to the hub's TLS handshakes: what a peer that has not authenticated yet can hold.
 *
 * - At most `maxPendingPerSource` connections per source address (see pendingPerSource.ts) between
 *   accept and the end of their handshake; one more is closed at once.
 * - A connection that has sent nothing within `clientHelloTimeoutMs` is closed: an idle socket never
 *   holds a handshake place, only its per-source count, and only that long.
 * - At most `max` handshakes run at once. Run all together, the handshakes of a reconnect storm share
 *   the CPU, progress slowly and finish together, many after their clients gave up; capped, they
 *   complete in turn. A socket takes its turn once its first ClientHello bytes arrived; the queue is
 *   served round robin across source addresses, so one address with many connections cannot make
 *   another address wait behind all of them. One that waits longer than maxWaitMs (from accept) is
 *   dropped (its client retries).
 *
 * While it waits a socket is read (so that a client that gives up is noticed and dropped at once); what
 * it sent meanwhile is put back for the TLS layer. A handshake that holds its place longer than leaseMs
 * is waiting on its client (a stalled or a distant one), not on the hub: it goes on, but no longer
 * takes a place, so stalled clients cannot block the port.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { PendingPerSource, sourceKey } from './pendingPerSource.js';

export interface HandshakeQueueOptions {
  /** Handshakes in progress at most. */
  readonly max: number;
  readonly maxWaitMs: number;
  readonly leaseMs: number;
  /** A connection that sent no byte by then is closed. */
  readonly clientHelloTimeoutMs: number;
  /** Connections from one source address that may be between accept and the end of their handshake. */
  readonly maxPendingPerSource: number;
}

/** More than a ClientHello: a client sending this much before its turn is not one. */
const MAX_EARLY_BYTES = 64 * 1024;

interface Waiting {
  /** Its turn: stops reading it and puts back what it sent, for the TLS layer to read. */
  readonly release: () => void;
  readonly drop: () => void;
}

export class HandshakeQueue {
  /** Handshakes holding a place, by the socket they started from, with their lease timer. */
  private readonly running = new Map<net.Socket, NodeJS.Timeout>();
  /** Sockets that sent their first bytes and wait for a place, per source; the map's order is the round robin. */
  private readonly waiting = new Map<string, Map<net.Socket, Waiting>>();
  /** Sockets accepted and not yet started (idle or queued), for close(). */
  private readonly admitted = new Map<net.Socket, Waiting>();
  private readonly pending: PendingPerSource;
  private waitingCount = 0;

  /** Sockets given to add() reach `server` (which does not listen itself) as its 'connection' events. */
  constructor(
    private readonly server: tls.Server,
    private readonly opts: HandshakeQueueOptions,
  ) {
    this.pending = new PendingPerSource(opts.maxPendingPerSource);
    // Node's TLS server ends every handshake with one of these two events, on the TLS socket it made
    // from the 'connection' socket (kept as _parent). Were that missing, the lease would free the place
    // and the socket's close its per-source count.
    const end = (socket: tls.TLSSocket) => this.handshakeEnded((socket as unknown as { _parent?: net.Socket })._parent);
    server.on('secureConnection', end);
    server.on('tlsClientError', (_err, socket) => end(socket));
  }

  get inProgress(): number {
    return this.running.size;
  }

  /** Sockets that sent their first bytes and wait for a place. */
  get queued(): number {
    return this.waitingCount;
  }

  /** Sockets accepted that have not finished their handshake, from the source of `address`. */
  pendingFrom(address: string): number {
    return this.pending.heldBy(address);
  }

  add(socket: net.Socket): void {
    if (!this.pending.admit(socket)) {
      socket.on('error', () => undefined).destroy();
      return;
    }
    const source = sourceKey(socket.remoteAddress ?? '');
    const chunks: Buffer[] = [];
    let bytes = 0;
    let queue: Map<net.Socket, Waiting> | undefined;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      if ((bytes += chunk.length) > MAX_EARLY_BYTES) return drop();
      if (queue) return;
      clearTimeout(helloTimer);
      queue = this.waiting.get(source) ?? new Map<net.Socket, Waiting>();
      this.waiting.set(source, queue);
      queue.set(socket, entry);
      this.waitingCount++;
      this.startNext();
    };
    const helloTimer = setTimeout(() => drop(), this.opts.clientHelloTimeoutMs);
    const waitTimer = setTimeout(() => drop(), this.opts.maxWaitMs);
    const stopWaiting = () => {
      clearTimeout(helloTimer);
      clearTimeout(waitTimer);
      socket.off('data', onData).off('end', drop).off('close', drop).off('error', drop);
      this.admitted.delete(socket);
      if (queue?.delete(socket)) {
        this.waitingCount--;
        if (queue.size === 0 && this.waiting.get(source) === queue) this.waiting.delete(source);
      }
    };
    const release = () => {
      stopWaiting();
      socket.pause();
      if (chunks.length) socket.unshift(Buffer.concat(chunks));
    };
    // Nothing is put back on a socket that is dropped: after its 'end' that would throw.
    const drop = () => {
      if (!this.admitted.has(socket)) return;
      stopWaiting();
      socket.on('error', () => undefined).destroy();
    };
    const entry: Waiting = { release, drop };
    this.admitted.set(socket, entry);
    socket.on('data', onData).once('end', drop).once('close', drop).on('error', drop);
  }

  /** Drops every socket not yet handed to the TLS server (the hub is stopping). */
  close(): void {
    for (const { drop } of [...this.admitted.values()]) drop();
  }

  /** Starts queued handshakes while places are free: the first socket of the next source in turn. */
  private startNext(): void {
    while (this.running.size < this.opts.max) {
      const turn = this.waiting.entries().next();
      if (turn.done) return;
      const [source, queue] = turn.value;
      const [socket, { release }] = queue.entries().next().value!;
      // The source goes to the back of the round, with whatever it has left.
      this.waiting.delete(source);
      if (queue.size > 1) this.waiting.set(source, queue);
      release();
      this.running.set(socket, setTimeout(() => this.freePlace(socket), this.opts.leaseMs).unref());
      this.server.emit('connection', socket);
    }
  }

  private handshakeEnded(socket: net.Socket | undefined): void {
    if (!socket) return;
    this.pending.release(socket);
    this.freePlace(socket);
  }

  /** A handshake ended or outlived its lease: its place goes to the next socket in turn. */
  private freePlace(socket: net.Socket): void {
    const lease = this.running.get(socket);
    if (lease === undefined) return;
    clearTimeout(lease);
    this.running.delete(socket);
    this.startNext();
  }
}

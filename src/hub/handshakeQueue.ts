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
 *   another address wait behind all of them, and one address holds at most half the places (rounded
 *   up), so stalled handshakes from one address leave the other half to everyone else. One that waits
 *   longer than maxWaitMs (from accept) is dropped (its client retries).
 *
 * The per-source limit is generous (1,024 by default) because many agents may share one address behind
 * NAT: with 32, 1,000 agents on one address took 18 s instead of 6.5 s to come back after a hub restart
 * (bench:scale), the refused ones backing off. It bounds sockets, not handshake places: an idle socket
 * costs a file descriptor and a few KiB for at most the ClientHello deadline.
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
  /** Handshakes holding a place, by the socket they started from, with their source and lease timer. */
  private readonly running = new Map<net.Socket, { source: string; lease: NodeJS.Timeout }>();
  private readonly placesBySource = new Map<string, number>();
  /** Half the places: a source with many stalled handshakes leaves the other half to everyone else. */
  private readonly maxPlacesPerSource: number;
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
    this.maxPlacesPerSource = Math.ceil(opts.max / 2);
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

  /**
   * Starts queued handshakes while places are free: the first socket of the next source in turn that
   * holds fewer than its share of places.
   */
  private startNext(): void {
    while (this.running.size < this.opts.max) {
      const source = this.nextSource();
      if (source === undefined) return;
      const queue = this.waiting.get(source)!;
      const [socket, { release }] = queue.entries().next().value!;
      // The source goes to the back of the round, with whatever it has left.
      this.waiting.delete(source);
      if (queue.size > 1) this.waiting.set(source, queue);
      release();
      this.running.set(socket, { source, lease: setTimeout(() => this.freePlace(socket), this.opts.leaseMs).unref() });
      this.placesBySource.set(source, (this.placesBySource.get(source) ?? 0) + 1);
      this.server.emit('connection', socket);
    }
  }

  private nextSource(): string | undefined {
    for (const source of this.waiting.keys()) if ((this.placesBySource.get(source) ?? 0) < this.maxPlacesPerSource) return source;
    return undefined;
  }

  private handshakeEnded(socket: net.Socket | undefined): void {
    if (!socket) return;
    this.pending.release(socket);
    this.freePlace(socket);
  }

  /** A handshake ended or outlived its lease: its place goes to the next socket in turn. */
  private freePlace(socket: net.Socket): void {
    const place = this.running.get(socket);
    if (place === undefined) return;
    clearTimeout(place.lease);
    this.running.delete(socket);
    const held = this.placesBySource.get(place.source)! - 1;
    if (held === 0) this.placesBySource.delete(place.source);
    else this.placesBySource.set(place.source, held);
    this.startNext();
  }
}

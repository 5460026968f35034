/**
 * Caps the TLS handshakes the hub runs at once. Run all together, the handshakes of a reconnect storm
 * share the CPU, progress slowly and finish together, many after their clients gave up; capped, they
 * complete first come, first served. A socket waits here, read (so that a client that gives up is
 * noticed and dropped at once), until a place frees; one that waits longer than maxWaitMs is dropped
 * (its client retries). What it sent meanwhile is put back for the TLS layer.
 *
 * A handshake that holds its place longer than leaseMs is waiting on its client (a stalled or a distant
 * one), not on the hub: it goes on, but no longer counts, so stalled clients cannot block the port.
 */
import type net from 'node:net';
import type tls from 'node:tls';

export interface HandshakeQueueOptions {
  /** Handshakes in progress at most. */
  readonly max: number;
  readonly maxWaitMs: number;
  readonly leaseMs: number;
}

/** More than a ClientHello: a client sending this much before its turn is not one. */
const MAX_EARLY_BYTES = 64 * 1024;

export class HandshakeQueue {
  /** Handshakes holding a place, by the socket they started from, with their lease timer. */
  private readonly running = new Map<net.Socket, NodeJS.Timeout>();
  /** Queued sockets in arrival order, each with the functions that start it or drop it. */
  private readonly waiting = new Map<net.Socket, { release: () => void; drop: () => void }>();

  /** Sockets given to add() reach `server` (which does not listen itself) as its 'connection' events. */
  constructor(
    private readonly server: tls.Server,
    private readonly opts: HandshakeQueueOptions,
  ) {
    // Node's TLS server ends every handshake with one of these two events, on the TLS socket it made
    // from the 'connection' socket (kept as _parent). Were that missing, the lease would free the place.
    const end = (socket: tls.TLSSocket) => this.end((socket as unknown as { _parent?: net.Socket })._parent);
    server.on('secureConnection', end);
    server.on('tlsClientError', (_err, socket) => end(socket));
  }

  get inProgress(): number {
    return this.running.size;
  }

  get queued(): number {
    return this.waiting.size;
  }

  add(socket: net.Socket): void {
    if (this.running.size < this.opts.max && this.waiting.size === 0) return this.begin(socket);
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      if ((bytes += chunk.length) > MAX_EARLY_BYTES) drop();
    };
    const timer = setTimeout(() => drop(), this.opts.maxWaitMs);
    const stopWaiting = () => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', drop).off('close', drop).off('error', drop);
    };
    /** Its turn: what it sent is put back, for the TLS layer to read. */
    const release = () => {
      stopWaiting();
      socket.pause();
      if (chunks.length) socket.unshift(Buffer.concat(chunks));
    };
    // Nothing is put back on a socket that is dropped: after its 'end' that would throw.
    const drop = () => {
      if (!this.waiting.delete(socket)) return;
      stopWaiting();
      socket.on('error', () => undefined).destroy();
    };
    socket.on('data', onData).once('end', drop).once('close', drop).on('error', drop);
    this.waiting.set(socket, { release, drop });
  }

  /** Drops every queued socket (the hub is stopping). */
  close(): void {
    for (const { drop } of this.waiting.values()) drop();
  }

  private begin(socket: net.Socket): void {
    this.running.set(socket, setTimeout(() => this.end(socket), this.opts.leaseMs).unref());
    this.server.emit('connection', socket);
  }

  /** A handshake ended or outlived its lease: its place goes to the next queued socket. */
  private end(socket: net.Socket | undefined): void {
    const lease = socket ? this.running.get(socket) : undefined;
    if (!socket || lease === undefined) return;
    clearTimeout(lease);
    this.running.delete(socket);
    for (const [next, { release }] of this.waiting) {
      if (this.running.size >= this.opts.max) return;
      this.waiting.delete(next);
      release();
      this.begin(next);
    }
  }
}

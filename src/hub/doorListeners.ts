/**
 * The hub's listeners beyond its main HTTPS port: the SOCKS5 port (`--socks-listen`) and plain HTTP
 * CONNECT on a unix socket (`--connect-uds`). The hub owns these listeners; the doors only get sockets.
 *
 * The unix socket has no credentials on the wire: access is the socket file's permissions (0660, owner
 * and group of the hub process), the model Konnectivity's UDS mode uses for a co-located
 * kube-apiserver. Everything that connects is the principal `uds` in group `warren:uds`, and like
 * every other principal it reaches only what a grant allows (default deny):
 *
 *   warren grant --group warren:uds --agent 'cluster-*' --host '10.96.0.0/12' --ports 443
 *
 * @module
 */
import fs from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import { formatHostPort, type HostPort } from '../shared/hostPort.js';
import type { Logger } from '../shared/log.js';
import { handleConnect } from '../doors/connect.js';
import type { Authenticator, Opener, Principal } from '../doors/door.js';
import { handleSocks5 } from '../doors/socks5.js';
import { sendError } from './httpJson.js';
import { PendingPerSource } from './pendingPerSource.js';
import { InFlight } from './inFlight.js';
import { abortStream } from '../tunnel/relay.js';

/** Who a client of the CONNECT unix socket is: its file permissions let it in, grants decide the rest. */
export const UDS_PRINCIPAL: Principal = Object.freeze({ user: 'uds', groups: Object.freeze(['warren:uds']), via: 'uds' as const });

export interface DoorListenersOptions {
  readonly socksListen: HostPort | undefined;
  readonly connectUds: string | undefined;
  readonly opener: Opener;
  readonly authenticator: Authenticator;
  readonly log: Logger;
  /** Called for every rejected SOCKS5 credential (metrics). */
  readonly onAuthFailure?: (door: 'socks5') => void;
  readonly handshakeTimeoutMs?: number;
  /** SOCKS5 connections one source address may have open before its request is read (--max-pending-per-source). */
  readonly maxPendingPerSource: number;
}

export interface DoorListeners {
  /** The SOCKS5 port as bound (port 0 resolved), when enabled. */
  readonly socksAddress: net.AddressInfo | undefined;
  readonly udsPath: string | undefined;
  /** Stops accepting and removes the socket file; open streams go on (the hub drains them). */
  stopAccepting(): void;
  /**
   * Resolves when every connection accepted so far has said what it wants (a SOCKS5 request read, a
   * CONNECT answered) or closed, or after `timeoutMs`: a stopping hub serves those (the opener drains
   * their streams from there).
   */
  answered(timeoutMs: number): Promise<void>;
  /** Resets every connection still open (a client must not take the end for a complete stream); called after the drain. */
  destroyConnections(): void;
}

/** Starts the enabled listeners; rejects with WARREN_E_CONFIG (and leaves nothing listening) if one cannot bind. */
export async function startDoorListeners(opts: DoorListenersOptions): Promise<DoorListeners> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const inFlight = new InFlight();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  let socksAddress: net.AddressInfo | undefined;
  let udsPath: string | undefined;
  try {
    if (opts.socksListen) {
      const log = opts.log.child({ door: 'socks5' });
      const authenticator: Authenticator = {
        fromToken: (token, door) =>
          opts.authenticator.fromToken(token, door).catch((err: unknown) => {
            opts.onAuthFailure?.('socks5');
            throw err;
          }),
      };
      // Until its request is read a client is unauthenticated or has not said what it wants: one address
      // may hold only so many such connections, so it cannot keep others' connections from being served.
      const pending = new PendingPerSource(opts.maxPendingPerSource);
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        if (!pending.admit(socket)) return void socket.on('error', () => undefined).destroy();
        track(socket);
        const answered = inFlight.untilClose(socket);
        void handleSocks5(socket, {
          opener: opts.opener, authenticator, log, onHandshakeEnd: () => (pending.release(socket), answered()),
          ...(opts.handshakeTimeoutMs ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
        });
      });
      servers.push(server);
      await listen(server, opts.socksListen, formatHostPort(opts.socksListen), '--socks-listen');
      socksAddress = server.address() as net.AddressInfo;
      log.info({ socksListen: formatHostPort({ host: socksAddress.address, port: socksAddress.port }) }, 'socks5 door listening');
    }
    if (opts.connectUds) {
      const log = opts.log.child({ door: 'uds' });
      const path = resolvePath(opts.connectUds);
      // bind(2) in a missing directory reports EACCES through libuv, which reads as a permission problem.
      if (!fs.existsSync(dirname(path))) {
        throw new WarrenError('WARREN_E_CONFIG', `--connect-uds: cannot create ${path}: its directory ${dirname(path)} does not exist; create it (mkdir -p ${dirname(path)}) or pick another path`);
      }
      await removeStaleSocket(path);
      const server = http.createServer({ requestTimeout: 0 });
      server.on('connection', track);
      server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
        inFlight.untilClose(socket);
        void handleConnect(req, socket, head, { opener: opts.opener, authenticate: async () => UDS_PRINCIPAL, door: 'uds', log });
      });
      server.on('request', (_req, res) => sendError(res, new WarrenError('WARREN_E_METHOD_NOT_ALLOWED', 'this unix socket serves only HTTP CONNECT host:port'), log));
      servers.push(server);
      // The socket file is created by bind(2) with the process umask applied; 0117 makes it 0660 from
      // the first instant (a chmod afterwards would leave a window with the default mode).
      const umask = process.umask(0o117);
      try {
        server.listen(path);
      } finally {
        process.umask(umask);
      }
      await listen(server, undefined, path, '--connect-uds');
      fs.chmodSync(path, 0o660);
      udsPath = path;
      log.info({ connectUds: path, mode: '0660' }, 'HTTP CONNECT door listening on a unix socket');
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }

  return {
    socksAddress,
    udsPath,
    stopAccepting() {
      for (const s of servers) s.close();
      // libuv unlinks a pipe's file when its server closes; this covers a server that never bound.
      if (udsPath) fs.rmSync(udsPath, { force: true });
    },
    answered: (timeoutMs) => inFlight.settled(timeoutMs),
    destroyConnections() {
      // A reset, not a FIN: a client cut off mid-stream must not take it for a complete one.
      for (const s of sockets) abortStream(s);
      sockets.clear();
    },
  };
}

async function listen(server: net.Server, hp: HostPort | undefined, where: string, flag: string): Promise<void> {
  if (hp) server.listen(hp.port, hp.host);
  // A unix-socket server was told to listen by the caller (inside the umask window).
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    throw listenError(err as NodeJS.ErrnoException, where, flag);
  }
}

function listenError(err: NodeJS.ErrnoException, where: string, flag: string): WarrenError {
  if (err.code === 'EADDRINUSE') return new WarrenError('WARREN_E_CONFIG', `${flag}: cannot listen on ${where}: the address is in use`);
  if (err.code === 'EACCES') return new WarrenError('WARREN_E_CONFIG', `${flag}: cannot listen on ${where}: permission denied`);
  if (err.code === 'EADDRNOTAVAIL') return new WarrenError('WARREN_E_CONFIG', `${flag}: cannot listen on ${where}: no such local address`);
  if (err.code === 'ENOENT') return new WarrenError('WARREN_E_CONFIG', `${flag}: cannot create ${where}: its directory does not exist`);
  const e = asWarrenError(err);
  return e.code === 'WARREN_E_INTERNAL' ? new WarrenError('WARREN_E_CONFIG', `${flag}: cannot listen on ${where}: ${err.code ?? err.message}`) : e;
}

/**
 * A socket file left by a hub that died is removed; a live one (something accepts on it) or a file that
 * is not a socket is an error, never deleted.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new WarrenError('WARREN_E_CONFIG', `--connect-uds: ${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    // ECONNREFUSED: a socket file nobody accepts on any more (the hub that made it is gone).
    probe.once('error', () => resolve(false));
  });
  if (live) throw new WarrenError('WARREN_E_CONFIG', `--connect-uds: ${path} is in use by another process (another hub?)`);
  fs.rmSync(path, { force: true });
}

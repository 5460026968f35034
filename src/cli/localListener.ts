/**
 * What `warren socks` and `warren forward` share: binding a local listener with errors that say what
 * to do, the warning for a listener reachable from other hosts, and running until SIGINT/SIGTERM.
 */
import net from 'node:net';
import { once } from 'node:events';
import { WarrenError } from '../shared/errors.js';
import { formatHostPort, type HostPort } from '../shared/hostPort.js';
import { isLoopback } from './localForwardSpec.js';

/** Listens on `hp` (port 0: a free port) and resolves with the bound address as HOST:PORT. */
export async function listenLocal(server: net.Server, hp: HostPort, what: string): Promise<string> {
  server.listen(hp.port, hp.host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = formatHostPort(hp);
    const why =
      code === 'EADDRINUSE' ? 'the address is in use (port 0 picks a free one)'
      : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
      : code === 'EADDRNOTAVAIL' ? 'no such local address'
      : (code ?? (err as Error).message);
    throw new WarrenError('WARREN_E_CONFIG', `${what}: cannot listen on ${where}: ${why}`);
  }
  const a = server.address() as net.AddressInfo;
  return formatHostPort({ host: a.address, port: a.port });
}

/** One line on stderr when a listener without authentication is reachable from other hosts. */
export function warnIfExposed(hp: HostPort, what: string): void {
  if (isLoopback(hp.host)) return;
  process.stderr.write(`${what}: warning: listening on ${formatHostPort(hp)} without authentication; anyone who can reach it uses your token\n`);
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilStopped(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Tracks a server's sockets so stopping can drop them (a plain close() waits for every one to end). */
export function trackSockets(server: net.Server): () => void {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return () => {
    server.close();
    for (const s of sockets) s.destroy();
  };
}

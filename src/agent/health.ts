/**
 * The agent's health endpoints for an orchestrator's probes (`--health-listen 0.0.0.0:8081`), plain
 * HTTP on their own port, nothing else on it:
 *
 *   GET /healthz   200 while the process runs (liveness, startup)
 *   GET /readyz    200 while the tunnel to the hub is up, else 503 (readiness)
 *
 * Both answer small JSON bodies and never say more than up/down.
 */
import http from 'node:http';
import type net from 'node:net';
import { once } from 'node:events';
import { WarrenError } from '../shared/errors.js';
import { formatHostPort, type HostPort } from '../shared/hostPort.js';

export interface HealthServer {
  readonly address: net.AddressInfo;
  close(): Promise<void>;
}

export async function startHealthServer(listen: HostPort, ready: () => boolean): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body) + '\n');
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { status: 'method not allowed' });
    if (path === '/healthz' || path === '/livez') return send(200, { status: 'ok' });
    if (path === '/readyz') return ready() ? send(200, { status: 'ready' }) : send(503, { status: 'tunnel down' });
    send(404, { status: 'not found' });
  });
  server.keepAliveTimeout = 5_000;
  server.listen(listen.port, listen.host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  } catch (err) {
    throw new WarrenError('WARREN_E_CONFIG', `--health-listen ${formatHostPort(listen)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  server.unref();
  return {
    address: server.address() as net.AddressInfo,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

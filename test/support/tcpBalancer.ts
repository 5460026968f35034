/**
 * A layer-4 load balancer in front of several hubs, standing in for a Kubernetes Service or a cloud
 * TCP load balancer: each new connection goes to the next backend in turn; a backend that refuses the
 * connection (its process is gone or not listening yet) is skipped and the next one tried, as
 * HAProxy's `retries`/`option redispatch` or Envoy's connect-failure retry do, and as a Service does
 * once a stopped pod's endpoint is removed. Bytes are passed through untouched (TLS ends at the hub),
 * and a reset on one side is passed on as a reset, an EOF as an EOF.
 *
 * With `readyz`, it also checks each backend's `GET /readyz` over HTTPS every `readyz.everyMs` (as a
 * kubelet's readiness probe does, without verifying the certificate) and sends no new connection to a
 * backend whose last answer was not 200, unless none is ready. What it does not imitate: any retry
 * after the connection was established.
 *
 * @example
 *   const lb = await startBalancer(hubs.map((h) => h.port));
 *   startAgent({ ..., args: ['--hub', lb.url] });
 *   lb.close();
 */
import https from 'node:https';
import net from 'node:net';
import { once } from 'node:events';

export interface Balancer {
  readonly port: number;
  readonly url: string;
  close(): void;
}

export interface BalancerOptions {
  readonly host?: string;
  /** Readiness checks of `GET /readyz` (HTTPS) on each backend. */
  readonly readyz?: { readonly everyMs: number };
}

export async function startBalancer(backends: readonly number[], opts: BalancerOptions = {}): Promise<Balancer> {
  const host = opts.host ?? '127.0.0.1';
  let next = 0;
  const sockets = new Set<net.Socket>();
  // Backends whose last readiness check failed; in turn order otherwise.
  const notReady = new Set<number>();
  const probe = opts.readyz && setInterval(() => {
    for (const port of backends) {
      const req = https.get({ host, port, path: '/readyz', rejectUnauthorized: false, agent: false, timeout: opts.readyz!.everyMs * 5 }, (res) => {
        res.resume();
        if (res.statusCode === 200) notReady.delete(port);
        else notReady.add(port);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => notReady.add(port));
    }
  }, opts.readyz.everyMs);
  const track = (s: net.Socket) => (sockets.add(s), s.once('close', () => sockets.delete(s)), s);
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    track(client);
    client.on('error', () => undefined);
    const start = next++ % backends.length;
    const turn = backends.map((_, i) => backends[(start + i) % backends.length]!);
    const ready = turn.filter((port) => !notReady.has(port));
    const order = ready.length > 0 ? ready : turn;
    const attempt = (i: number): void => {
      if (i === order.length || client.destroyed) return void client.resetAndDestroy();
      const upstream = track(net.connect({ host, port: order[i]!, allowHalfOpen: true }));
      upstream.once('error', () => attempt(i + 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        pipe(client, upstream);
        pipe(upstream, client);
        client.resume();
      });
    };
    attempt(0);
  });
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `https://${host}:${port}`,
    close() {
      clearInterval(probe);
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** `from` → `to`, EOF as EOF, an error or reset as a reset. */
function pipe(from: net.Socket, to: net.Socket): void {
  from.pipe(to);
  from.on('error', () => {
    if (!to.destroyed) to.resetAndDestroy();
  });
}

/**
 * A layer-4 load balancer in front of several hubs, standing in for a Kubernetes Service or a cloud
 * TCP load balancer: each new connection goes to the next backend in turn; a backend that refuses the
 * connection (its process is gone or not listening yet) is skipped and the next one tried, as
 * HAProxy's `retries`/`option redispatch` or Envoy's connect-failure retry do, and as a Service does
 * once a stopped pod's endpoint is removed. Bytes are passed through untouched (TLS ends at the hub),
 * and a reset on one side is passed on as a reset, an EOF as an EOF.
 *
 * What it does not imitate: health checks (a backend that accepts and then hangs is not skipped) and
 * any retry after the connection was established.
 *
 * @example
 *   const lb = await startBalancer(hubs.map((h) => h.port));
 *   startAgent({ ..., args: ['--hub', lb.url] });
 *   lb.close();
 */
import net from 'node:net';
import { once } from 'node:events';

export interface Balancer {
  readonly port: number;
  readonly url: string;
  close(): void;
}

export async function startBalancer(backends: readonly number[], host = '127.0.0.1'): Promise<Balancer> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => (sockets.add(s), s.once('close', () => sockets.delete(s)), s);
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    track(client);
    client.on('error', () => undefined);
    const start = next++ % backends.length;
    const attempt = (i: number): void => {
      if (i === backends.length || client.destroyed) return void client.resetAndDestroy();
      const upstream = track(net.connect({ host, port: backends[(start + i) % backends.length]!, allowHalfOpen: true }));
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

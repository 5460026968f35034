/**
 * The "plain Node TCP relay hop" baseline: accept, connect to the target, pipe both ways with
 * half-close kept. What any Node proxy costs before it adds TLS, framing or multiplexing.
 * With WORKERS > 1 the hop is that many processes behind one port (node:cluster;
 * NODE_CLUSTER_SCHED_POLICY=rr|none picks whether the primary accepts and hands sockets over).
 *
 *   node --import tsx bench/lib/relayHop.ts TARGET_PORT [WORKERS]     → prints {"listening":PORT}
 */
import cluster from 'node:cluster';
import net from 'node:net';

const targetPort = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? 1);

if (workers > 1 && cluster.isPrimary) {
  let ready = 0;
  cluster.on('listening', (_w, address) => {
    if (++ready === workers) process.stdout.write(JSON.stringify({ listening: address.port }) + '\n');
  });
  cluster.on('exit', (_w, code) => process.exit(code || 1));
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true, noDelay: true });
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1', () => {
    if (!cluster.isWorker) process.stdout.write(JSON.stringify({ listening: (server.address() as net.AddressInfo).port }) + '\n');
  });
}

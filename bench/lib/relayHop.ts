/**
 * The "plain Node TCP relay hop" baseline: accept, connect to the target, pipe both ways with
 * half-close kept. What any Node proxy costs before it adds TLS, framing or multiplexing.
 *
 *   node --import tsx bench/lib/relayHop.ts TARGET_PORT     → prints {"listening":PORT}
 */
import net from 'node:net';

const targetPort = Number(process.argv[2]);
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
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ listening: (server.address() as net.AddressInfo).port }) + '\n'));

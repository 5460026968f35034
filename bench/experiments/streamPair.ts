/**
 * One end of the "one TLS connection per stream" pair the design experiments are measured on: two
 * processes joined by a TLS 1.3 (TLS_AES_128_GCM_SHA256, mutual certificates) connection per stream,
 * a client's TCP socket on the near side, the target's TCP socket on the far side.
 *
 *   near  (where a hub stands) listens for clients; per client it dials the far end and relays
 *   far   (where an agent stands) accepts the TLS connection, dials the target and relays
 *
 * `--mode node`: Node's TLS and `stream.pipe` both ways (the floor). `--mode native`: JavaScript accepts
 * and dials (the control plane), then hands both descriptors to bench/experiments/native-relay, which
 * does the TLS handshake and copies in a thread of its own; if the addon does not load, the node mode
 * runs instead; a `{"native":"loaded"}` or `{"native":"fallback: WHY"}` line says which. `--workers N` (near only): N processes behind
 * one port (node:cluster; NODE_CLUSTER_SCHED_POLICY=rr|none picks who accepts).
 *
 *   node --import tsx bench/experiments/streamPair.ts far  --mode node|native --target PORT
 *   node --import tsx bench/experiments/streamPair.ts near --mode node|native --far PORT [--workers N]
 *
 * Certificates: a JSON file {caPem, near: {certPem, keyPem}, far: {certPem, keyPem}} named by
 * STREAM_PAIR_CERTS. Prints `{"listening":PORT}` when ready.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

interface NativeRelay {
  createContext(o: { server: boolean; certPem: string; keyPem: string; caPem: string; host?: string }): unknown;
  relay(ctx: unknown, plainFd: number, tlsFd: number, done: (err: Error | null, toTls: number, fromTls: number) => void): void;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { mode: { type: 'string', default: 'node' }, target: { type: 'string' }, far: { type: 'string' }, workers: { type: 'string', default: '1' } },
});
const role = positionals[0];
if (role !== 'near' && role !== 'far') throw new Error('usage: streamPair.ts near|far --mode node|native …');
const certs = JSON.parse(fs.readFileSync(process.env.STREAM_PAIR_CERTS!, 'utf8')) as {
  caPem: string; near: { certPem: string; keyPem: string }; far: { certPem: string; keyPem: string };
};
const me = certs[role];
const workers = Number(values.workers);

function loadNative(): NativeRelay | string {
  try {
    const require = createRequire(import.meta.url);
    return require(path.join(import.meta.dirname, 'native-relay/build/Release/native_relay.node')) as NativeRelay;
  } catch (e) {
    return (e as Error).message.split('\n')[0]!;
  }
}

const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

/** Both sockets connected: the addon takes their descriptors over, our handles close at once. */
function handOver(native: NativeRelay, ctx: unknown, plain: net.Socket, tlsSide: net.Socket): void {
  try {
    native.relay(ctx, fdOf(plain), fdOf(tlsSide), (err) => {
      if (err) process.stderr.write(`native relay: ${err.message}\n`);
    });
  } finally {
    plain.destroy();
    tlsSide.destroy();
  }
}

/** Node's floor: `pipe()` both ways, half-close kept; an error on either side destroys both. */
function pipeBoth(a: net.Socket, b: net.Socket): void {
  const kill = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  a.pipe(b);
  b.pipe(a);
}

function serve(onClient: (s: net.Socket) => void, secure: boolean): net.Server {
  return secure
    ? tls.createServer({ key: me.keyPem, cert: me.certPem, ca: [certs.caPem], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256', allowHalfOpen: true, noDelay: true }, onClient)
    : net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, onClient);
}

function start(): void {
  let native: NativeRelay | undefined;
  if (values.mode === 'native') {
    const loaded = loadNative();
    if (typeof loaded !== 'string') native = loaded;
    process.stdout.write(JSON.stringify({ native: typeof loaded === 'string' ? `fallback: ${loaded}` : 'loaded' }) + '\n');
  }
  const ctx = native?.createContext({ server: role === 'far', certPem: me.certPem, keyPem: me.keyPem, caPem: certs.caPem, host: '127.0.0.1' });
  let server: net.Server;
  if (role === 'far') {
    const targetPort = Number(values.target);
    server = serve((peer) => {
      const target = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true, noDelay: true });
      if (!native) return pipeBoth(peer, target);
      target.pause();
      const fail = (): void => void (peer.destroy(), target.destroy());
      peer.on('error', fail);
      target.on('error', fail);
      target.once('connect', () => handOver(native, ctx, target, peer));
    }, !native);
  } else {
    const farPort = Number(values.far);
    server = serve((client) => {
      if (!native) {
        client.setNoDelay(true);
        client.resume();
        const far = tls.connect({ host: '127.0.0.1', port: farPort, ca: [certs.caPem], cert: me.certPem, key: me.keyPem, allowHalfOpen: true, minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' } as tls.ConnectionOptions);
        // tls.connect ignores `noDelay`; without this, Nagle holds the first bytes after the handshake
        // until the peer's delayed ACK (~40 ms per new stream).
        far.setNoDelay(true);
        return pipeBoth(client, far);
      }
      const far = net.connect({ host: '127.0.0.1', port: farPort, allowHalfOpen: true, noDelay: true });
      far.pause();
      const fail = (): void => void (client.destroy(), far.destroy());
      client.on('error', fail);
      far.on('error', fail);
      far.once('connect', () => handOver(native, ctx, client, far));
    }, false);
  }
  server.listen(0, '127.0.0.1', () => {
    if (!cluster.isWorker) process.stdout.write(JSON.stringify({ listening: (server.address() as net.AddressInfo).port }) + '\n');
  });
}

if (role === 'near' && workers > 1 && cluster.isPrimary) {
  let ready = 0;
  cluster.on('listening', (_w, address) => {
    if (++ready === workers) process.stdout.write(JSON.stringify({ listening: address.port }) + '\n');
  });
  cluster.on('exit', (_w, code) => process.exit(code || 1));
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  start();
}

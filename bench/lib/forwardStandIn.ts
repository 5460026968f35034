/**
 * A stand-in for a hub-side TCP forward (`warren forwards create … --entry hub:PORT`) while the real one
 * does not exist yet: the real hub (startHub from src/hub/hub.ts, same config path as `warren hub`) plus
 * one plain TCP listener whose connections go through the hub's Opener — resolve, scope check, open a
 * CONNECT stream through the agent tunnel, relay, audit — exactly what a forward's listener does.
 * It is the counterpart of `ssh -R`'s listener: plain TCP in, no client-side TLS or CONNECT handshake.
 *
 *   node --import tsx bench/lib/forwardStandIn.ts DATA_DIR TARGET NAME
 *     → the hub's usual logs; over an IPC channel, the hub's ready message with `forward: PORT` added
 */
import net from 'node:net';
import { hubConfig } from '../../src/hub/config.js';
import { startHub } from '../../src/hub/hub.js';
import { createLogger } from '../../src/shared/log.js';
import { sendHubReady } from '../../src/cli/readySignal.js';
import type { Principal } from '../../src/doors/door.js';

const [dataDir, target, user] = process.argv.slice(2) as [string, string, string];
const config = hubConfig({ listen: '127.0.0.1:0', dataDir, maxNewStreamsPerSecond: '0' });
const log = await createLogger('hub', config.logLevel);
const hub = await startHub(config, log);
// What src/hub/forwards.ts runs a forward's connections as: no groups, scoped to exactly its target.
const principal: Principal = { user: `forward:${user}`, groups: [], via: 'forward', scope: { target } };
let bytesIn = 0;
let bytesOut = 0;

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const abort = new AbortController();
  const onClose = () => abort.abort();
  socket.once('close', onClose);
  hub.opener.open({ target, principal, door: 'forward', source: `${socket.remoteAddress}:${socket.remotePort}`, signal: abort.signal }).then(
    (opened) => {
      socket.off('close', onClose);
      if (socket.destroyed) return void opened.stream.destroy();
      void opened.relay(socket);
      // The real forward counts its bytes per forward too.
      socket.on('data', (c: Buffer) => void (bytesIn += c.length));
      opened.stream.on('data', (c: Buffer) => void (bytesOut += c.length));
    },
    () => socket.resetAndDestroy(),
  );
});
server.listen(0, '127.0.0.1', () => sendHubReady(hub, { forward: (server.address() as net.AddressInfo).port }));
const stop = () => void hub.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

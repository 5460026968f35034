/**
 * The handshake cap over real sockets on 127.0.0.1: a TCP listener feeds a TLS server through the
 * queue, as in the hub (which makes a socket half-open only once its handshake is done).
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { createCa } from '../pki/pki.js';
import { HandshakeQueue } from './handshakeQueue.js';

const pair = await createCa('handshake queue test');

async function start(t: TestContext, max: number, maxWaitMs = 30_000, leaseMs = 30_000) {
  const server = tls.createServer({ key: pair.keyPem, cert: pair.certPem, ALPNProtocols: ['t/1'] });
  const queue = new HandshakeQueue(server, { max, maxWaitMs, leaseMs });
  /** Every handshake's end, in order: the client port of the socket, and whether TLS came up. */
  const ended: Array<[number, boolean]> = [];
  const endings = new EventEmitter();
  server.on('secureConnection', (s: tls.TLSSocket) => (ended.push([s.remotePort!, true]), endings.emit('ended'), s.end('hello')));
  server.on('tlsClientError', (_err, s: tls.TLSSocket) => (ended.push([s.remotePort ?? -1, false]), endings.emit('ended'), s.destroy()));
  const accepted: net.Socket[] = [];
  const listener = net.createServer((s) => (accepted.push(s), queue.add(s)));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  t.after(() => {
    queue.close();
    for (const s of accepted) s.destroy();
    listener.close();
  });
  const port = (listener.address() as net.AddressInfo).port;
  /** A TCP connection the hub has accepted (and queued or started). */
  const raw = async () => {
    const n = accepted.length;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await once(listener, 'connection');
    assert.equal(accepted.length, n + 1);
    return s;
  };
  const tlsClient = () => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['t/1'] });
    s.on('error', () => undefined);
    return s;
  };
  return { queue, ended, endings, raw, tlsClient, accepted, listener };
}

test('with a cap of 1 a second handshake starts only when the first one ends, and then completes', { timeout: 20_000 }, async (t) => {
  const { queue, ended, raw, tlsClient, listener } = await start(t, 1);
  const first = await raw(); // connected, sends nothing: its handshake holds the one slot
  assert.equal(queue.inProgress, 1);
  const accepted = once(listener, 'connection');
  const second = tlsClient();
  const [hubSide] = (await accepted) as [net.Socket];
  // its ClientHello arrives while it waits; it must not start
  await once(hubSide, 'data');
  assert.equal(queue.inProgress, 1);
  assert.equal(queue.queued, 1);
  assert.equal(ended.length, 0);
  const hello = once(second, 'data'); // sent by the server when its side of the handshake is done
  first.destroy();
  assert.equal(String(((await hello) as [Buffer])[0]), 'hello');
  assert.equal(second.alpnProtocol, 't/1');
  assert.deepEqual(ended.map(([, ok]) => ok), [false, true], 'the first handshake ended (failed) before the second one succeeded');
  assert.equal(queue.inProgress, 0);
  assert.equal(queue.queued, 0);
  second.destroy();
});

test('a socket that closes while queued is dropped without taking a slot', { timeout: 20_000 }, async (t) => {
  const { queue, ended, raw, tlsClient, accepted } = await start(t, 1);
  const first = await raw();
  const quitter = await raw();
  assert.equal(queue.queued, 1);
  const dropped = once(accepted[1]!, 'close');
  quitter.end();
  await dropped;
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
  const third = tlsClient();
  const hello = once(third, 'data');
  first.destroy();
  await hello;
  assert.equal(ended.length, 2, 'two handshakes ran: the first (failed) and the third; the quitter never started');
  assert.deepEqual(ended[1], [third.localPort, true]);
  third.destroy();
});

test('a queued client that sends bytes and then its FIN is dropped without an error', { timeout: 20_000 }, async (t) => {
  // The bytes held for the TLS layer are discarded, not put back after 'end' (which would throw).
  const { queue, raw, accepted } = await start(t, 1);
  await raw();
  const quitter = await raw();
  const hubSide = accepted[1]!;
  const errors: Error[] = [];
  hubSide.on('error', (err) => errors.push(err));
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));
  const gotBytes = once(hubSide, 'data');
  quitter.write(Buffer.alloc(300, 0x16));
  await gotBytes;
  const closed = once(hubSide, 'close');
  quitter.end();
  await closed;
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.deepEqual(uncaught.map((e) => e.message), []);
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
});

test('a socket that waits longer than maxWaitMs is dropped', { timeout: 20_000 }, async (t) => {
  const { queue, raw } = await start(t, 1, 200);
  await raw();
  const waiting = await raw();
  assert.equal(queue.queued, 1);
  await once(waiting, 'close');
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
});

test('a handshake that outlives its lease stops counting, so a stalled client does not block the next', { timeout: 20_000 }, async (t) => {
  const { queue, ended, endings, raw, tlsClient, listener } = await start(t, 1, 30_000, 200);
  const stalled = await raw();
  const second = tlsClient();
  assert.equal(String(((await once(second, 'data')) as [Buffer])[0]), 'hello');
  assert.equal(ended.length, 1, 'only the second handshake ended');
  assert.equal(queue.inProgress, 0, 'the stalled one no longer counts');
  const stalledEnded = once(endings, 'ended');
  stalled.destroy();
  await stalledEnded;
  // Its end did not free a place twice: with one handshake in progress the next one waits.
  await raw();
  assert.equal(queue.inProgress, 1);
  const queued = once(listener, 'connection');
  const fourth = tlsClient();
  await queued;
  assert.equal(queue.queued, 1);
  second.destroy();
  fourth.destroy();
});

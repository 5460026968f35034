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
import { withDeadline } from '../../test/support/proc.js';

const pair = await createCa('handshake queue test');

/** The start of a TLS record announcing a 200-byte ClientHello that never comes: a handshake that stalls. */
const PARTIAL_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8]);

interface Limits {
  max: number;
  maxWaitMs?: number;
  leaseMs?: number;
  clientHelloTimeoutMs?: number;
  maxPendingPerSource?: number;
}

async function start(t: TestContext, limits: Limits) {
  const server = tls.createServer({ key: pair.keyPem, cert: pair.certPem, ALPNProtocols: ['t/1'] });
  const queue = new HandshakeQueue(server, { maxWaitMs: 30_000, leaseMs: 30_000, clientHelloTimeoutMs: 30_000, maxPendingPerSource: 1000, ...limits });
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
  /** A TCP connection (from `from`) that the hub has accepted; it sends nothing. */
  const raw = async (from = '127.0.0.1') => {
    const n = accepted.length;
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    s.on('error', () => undefined);
    await withDeadline(once(listener, 'connection'), 5_000, 'a connection reaching the listener');
    assert.equal(accepted.length, n + 1);
    return s;
  };
  /** A connection whose handshake has begun and stalls: it takes a place (or queues for one). */
  const stalled = async (from = '127.0.0.1') => {
    const s = await raw(from);
    const hubSide = accepted.at(-1)!;
    const arrived = withDeadline(once(hubSide, 'data'), 5_000, 'hubSide receiving its first bytes');
    s.write(PARTIAL_HELLO);
    await arrived;
    return s;
  };
  const tlsClient = () => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['t/1'] });
    s.on('error', () => undefined);
    return s;
  };
  return { queue, ended, endings, raw, stalled, tlsClient, accepted, listener, port };
}

test('with a cap of 1 a second handshake starts only when the first one ends, and then completes', { timeout: 20_000 }, async (t) => {
  const { queue, ended, stalled, tlsClient, listener } = await start(t, { max: 1 });
  const first = await stalled(); // its handshake began and stalls: it holds the one slot
  assert.equal(queue.inProgress, 1);
  const accepted = withDeadline(once(listener, 'connection'), 5_000, 'a connection reaching the listener');
  const second = tlsClient();
  const [hubSide] = (await accepted) as [net.Socket];
  // its ClientHello arrives while it waits; it must not start
  await withDeadline(once(hubSide, 'data'), 5_000, 'hubSide receiving its first bytes');
  assert.equal(queue.inProgress, 1);
  assert.equal(queue.queued, 1);
  assert.equal(ended.length, 0);
  const hello = withDeadline(once(second, 'data'), 5_000, 'second receiving its first bytes'); // sent by the server when its side of the handshake is done
  first.destroy();
  assert.equal(String(((await hello) as [Buffer])[0]), 'hello');
  assert.equal(second.alpnProtocol, 't/1');
  assert.deepEqual(ended.map(([, ok]) => ok), [false, true], 'the first handshake ended (failed) before the second one succeeded');
  assert.equal(queue.inProgress, 0);
  assert.equal(queue.queued, 0);
  second.destroy();
});

test('a socket that closes while queued is dropped without taking a slot', { timeout: 20_000 }, async (t) => {
  const { queue, ended, stalled, tlsClient, accepted } = await start(t, { max: 1 });
  const first = await stalled();
  const quitter = await stalled();
  assert.equal(queue.queued, 1);
  const dropped = once(accepted[1]!, 'close');
  quitter.end();
  await dropped;
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
  const third = tlsClient();
  const hello = withDeadline(once(third, 'data'), 5_000, 'third receiving its first bytes');
  first.destroy();
  await hello;
  assert.equal(ended.length, 2, 'two handshakes ran: the first (failed) and the third; the quitter never started');
  assert.deepEqual(ended[1], [third.localPort, true]);
  third.destroy();
});

test('a queued client that sends bytes and then its FIN is dropped without an error', { timeout: 20_000 }, async (t) => {
  // The bytes held for the TLS layer are discarded, not put back after 'end' (which would throw).
  const { queue, raw, stalled, accepted } = await start(t, { max: 1 });
  await stalled();
  const quitter = await raw();
  const hubSide = accepted[1]!;
  const errors: Error[] = [];
  hubSide.on('error', (err) => errors.push(err));
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));
  const gotBytes = withDeadline(once(hubSide, 'data'), 5_000, 'hubSide receiving its first bytes');
  quitter.write(Buffer.alloc(300, 0x16));
  await gotBytes;
  const closed = withDeadline(once(hubSide, 'close'), 5_000, 'hubSide closing');
  quitter.end();
  await closed;
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.deepEqual(uncaught.map((e) => e.message), []);
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
});

test('a socket that waits longer than maxWaitMs is dropped', { timeout: 20_000 }, async (t) => {
  const { queue, stalled } = await start(t, { max: 1, maxWaitMs: 200 });
  await stalled();
  const waiting = await stalled();
  assert.equal(queue.queued, 1);
  await withDeadline(once(waiting, 'close'), 5_000, 'waiting closing');
  assert.equal(queue.queued, 0);
  assert.equal(queue.inProgress, 1);
});

test('a handshake that outlives its lease stops counting, so a stalled client does not block the next', { timeout: 20_000 }, async (t) => {
  const { queue, ended, endings, stalled: stall, tlsClient, listener } = await start(t, { max: 1, leaseMs: 200 });
  const stalled = await stall();
  const second = tlsClient();
  assert.equal(String(((await withDeadline(once(second, 'data'), 5_000, 'second receiving its first bytes')) as [Buffer])[0]), 'hello');
  assert.equal(ended.length, 1, 'only the second handshake ended');
  assert.equal(queue.inProgress, 0, 'the stalled one no longer counts');
  const stalledEnded = once(endings, 'ended');
  stalled.destroy();
  await stalledEnded;
  // Its end did not free a place twice: with one handshake in progress the next one waits.
  await stall();
  assert.equal(queue.inProgress, 1);
  const queued = withDeadline(once(listener, 'connection'), 5_000, 'a connection reaching the listener');
  const fourth = tlsClient();
  const [fourthHubSide] = (await queued) as [net.Socket];
  await withDeadline(once(fourthHubSide, 'data'), 5_000, 'fourthHubSide receiving its first bytes'); // its ClientHello: only now does it wait for a place
  assert.equal(queue.queued, 1);
  second.destroy();
  fourth.destroy();
});

test('an idle connection takes no handshake place: a TLS client completes while it stays open', { timeout: 20_000 }, async (t) => {
  const { queue, ended, raw, tlsClient } = await start(t, { max: 1 });
  const idle = await raw();
  assert.equal(queue.inProgress, 0);
  assert.equal(queue.pendingFrom('127.0.0.1'), 1, 'the idle connection counts against its source');
  const client = tlsClient();
  assert.equal(String(((await withDeadline(once(client, 'data'), 5_000, 'client receiving its first bytes')) as [Buffer])[0]), 'hello');
  assert.deepEqual(ended.map(([port, ok]) => [port, ok]), [[client.localPort, true]]);
  assert.equal(idle.destroyed, false);
  client.destroy();
  idle.destroy();
});

test('regression: a connection that sends nothing within clientHelloTimeoutMs is closed and frees its count', { timeout: 20_000 }, async (t) => {
  const { queue, raw, stalled, accepted } = await start(t, { max: 4, clientHelloTimeoutMs: 200 });
  const started = Date.now();
  await raw();
  const idleClosed = once(accepted.at(-1)!, 'close');
  const talking = await stalled(); // sent its first bytes: the ClientHello deadline no longer applies
  await idleClosed;
  assert.ok(Date.now() - started >= 150, `closed after ${Date.now() - started} ms, before the deadline`);
  assert.equal(queue.pendingFrom('127.0.0.1'), 1, 'only the talking connection still counts');
  assert.equal(talking.destroyed, false);
  assert.equal(queue.inProgress, 1);
  talking.destroy();
});

test('beyond maxPendingPerSource a new connection from that address is closed at once; other addresses are not affected', { timeout: 20_000 }, async (t) => {
  const { queue, raw, tlsClient, accepted } = await start(t, { max: 4, maxPendingPerSource: 2 });
  const held = [await raw('127.0.0.2'), await raw('127.0.0.2')];
  const firstHubSide = accepted.at(-2)!;
  const third = await raw('127.0.0.2');
  const [hadError] = (await withDeadline(once(third, 'close'), 5_000, 'third closing')) as [boolean];
  assert.equal(hadError, false, 'closed by the hub, not reset by an error on our side');
  assert.equal(queue.pendingFrom('127.0.0.2'), 2);
  // Another address is admitted and completes its handshake.
  const other = tlsClient();
  assert.equal(String(((await withDeadline(once(other, 'data'), 5_000, 'other receiving its first bytes')) as [Buffer])[0]), 'hello');
  // A finished handshake stops counting: 127.0.0.1 completes more handshakes than its limit, all kept open.
  const more = [tlsClient(), tlsClient()];
  for (const c of more) assert.equal(String(((await withDeadline(once(c, 'data'), 5_000, 'c receiving its first bytes')) as [Buffer])[0]), 'hello');
  assert.equal(queue.pendingFrom('127.0.0.1'), 0);
  // One of the held connections goes: its place is free for the next one from that address.
  const firstClosed = withDeadline(once(firstHubSide, 'close'), 5_000, 'firstHubSide closing');
  held[0]!.destroy();
  await firstClosed;
  assert.equal(queue.pendingFrom('127.0.0.2'), 1);
  const fourth = await raw('127.0.0.2');
  assert.equal(queue.pendingFrom('127.0.0.2'), 2);
  for (const s of [held[1]!, fourth, other, ...more]) s.destroy();
});

test('the queue is served round robin across addresses: one address with many waiting sockets does not make another wait behind them', { timeout: 20_000 }, async (t) => {
  const { ended, endings, stalled, tlsClient, listener } = await start(t, { max: 1 });
  const holder = await stalled('127.0.0.2');
  const flood = [];
  for (let i = 0; i < 4; i++) flood.push(await stalled('127.0.0.2'));
  const accepted = withDeadline(once(listener, 'connection'), 5_000, 'a connection reaching the listener');
  const client = tlsClient(); // from 127.0.0.1, queued after all four
  await accepted;
  const hello = withDeadline(once(client, 'data'), 5_000, 'client receiving its first bytes');
  const holderEnded = once(endings, 'ended');
  holder.destroy(); // the place goes to 127.0.0.2's first queued socket (its turn came first)…
  await holderEnded;
  flood[0]!.destroy(); // …and when that one ends, to 127.0.0.1, not to 127.0.0.2's next three
  assert.equal(String(((await hello) as [Buffer])[0]), 'hello');
  assert.deepEqual(ended.map(([, ok]) => ok), [false, false, true], 'the holder and one flood socket failed, then the client succeeded');
  assert.equal(ended[2]![0], client.localPort);
  for (const s of [client, ...flood]) s.destroy();
});

test('one address holds at most half the handshake places: its stalled handshakes leave the rest to other addresses', { timeout: 20_000 }, async (t) => {
  const { queue, ended, stalled, tlsClient } = await start(t, { max: 4 });
  const flood = [];
  for (let i = 0; i < 4; i++) flood.push(await stalled('127.0.0.2'));
  assert.equal(queue.inProgress, 2, 'two of the four places');
  assert.equal(queue.queued, 2, 'the other two wait though places are free');
  const clients = [tlsClient(), tlsClient()]; // from 127.0.0.1: straight into the free places
  for (const c of clients) assert.equal(String(((await withDeadline(once(c, 'data'), 5_000, 'c receiving its first bytes')) as [Buffer])[0]), 'hello');
  assert.deepEqual(ended.map(([, ok]) => ok), [true, true]);
  for (const s of [...clients, ...flood]) s.destroy();
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { EarlyData, EARLY_DATA_LIMIT } from './earlyData.js';
import { relay } from './relay.js';
import { withDeadline } from '../../test/support/proc.js';

/** A connected pair of real TCP sockets on loopback: [connecting side, accepted side]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = withDeadline(once(server, 'connection'), 5_000, 'server: a connection arriving');
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [peer] = (await accepted) as [net.Socket];
  await withDeadline(once(client, 'connect'), 5_000, 'client connecting');
  server.close();
  return [client, peer];
}

/** Reads `s` until `n` bytes have arrived, then pauses it (the rest stays for the next reader). */
function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got < n) return;
      s.off('data', onData);
      s.pause();
      resolve(Buffer.concat(chunks));
    };
    s.on('data', onData);
  });
}

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.resume();
  return withDeadline(once(s, 'end'), 5_000, 'EOF').then(() => Buffer.concat(chunks));
}

test('early bytes reach the stream before any answer, a retry gets them all again, and the relay goes on without duplicates', async () => {
  const [client, hubSide] = await socketPair();
  const [first, firstFar] = await socketPair();
  const [second, secondFar] = await socketPair();
  const early = new EarlyData(hubSide);
  early.sendTo(first);
  client.write('hello ');
  assert.equal((await withDeadline(readBytes(firstFar, 6), 5_000, 'early bytes on the first stream')).toString(), 'hello ');
  // The first stream is lost before its answer: the next one gets everything from the start.
  early.stop(false);
  first.destroy();
  early.sendTo(second);
  client.write('world');
  assert.equal((await withDeadline(readBytes(secondFar, 11), 5_000, 'replayed and new bytes on the second stream')).toString(), 'hello world');
  early.stop(true);
  assert.equal(early.sent, 11);
  const rest = readAll(secondFar);
  const done = relay(hubSide, second);
  client.end('!');
  assert.equal((await rest).toString(), '!');
  secondFar.end();
  await withDeadline(readAll(client), 5_000, 'client EOF');
  const counts = await withDeadline(done, 5_000, 'relay end');
  assert.equal(counts.aToB, 1);
  assert.equal(counts.error, undefined);
});

test('a client that sent its bytes and its FIN before the answer still has its EOF carried by the relay', async () => {
  const [client, hubSide] = await socketPair();
  const [stream, far] = await socketPair();
  const early = new EarlyData(hubSide);
  const received = readAll(far);
  early.sendTo(stream);
  client.end('request');
  await withDeadline(once(hubSide, 'end'), 5_000, 'the client EOF read early');
  early.stop(true);
  const done = relay(hubSide, stream);
  assert.equal((await received).toString(), 'request');
  far.end('answer');
  assert.equal((await readAll(client)).toString(), 'answer');
  await withDeadline(done, 5_000, 'relay end');
});

test('at most EARLY_DATA_LIMIT bytes go ahead of the answer; the rest waits for the relay', async () => {
  const [client, hubSide] = await socketPair();
  const [stream, far] = await socketPair();
  const early = new EarlyData(hubSide);
  early.sendTo(stream);
  const total = 4 * EARLY_DATA_LIMIT;
  client.end(Buffer.alloc(total, 7));
  await withDeadline(readBytes(far, EARLY_DATA_LIMIT), 5_000, 'the early part');
  assert.ok(early.sent >= EARLY_DATA_LIMIT && early.sent < total, `sent ${early.sent} of ${total} early`);
  early.stop(true);
  const sentEarly = early.sent;
  const rest = readAll(far);
  const done = relay(hubSide, stream);
  far.end();
  const counts = await withDeadline(done, 5_000, 'relay end');
  assert.equal(sentEarly + (await rest).length, total);
  assert.equal(sentEarly + counts.aToB, total);
});

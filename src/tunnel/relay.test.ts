import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { relay } from './relay.js';
import { Backoff } from './backoff.js';
import { withDeadline } from '../../test/support/proc.js';

/** A connected pair of real TCP sockets on loopback: [client side, server side]. */
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

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks));
}

test('relay carries half-close: the answer sent after the client EOF still arrives (regression: nc -N)', async () => {
  const [client, hubSide] = await socketPair();
  const [agentSide, target] = await socketPair();
  const done = relay(hubSide, agentSide);
  // target answers only after reading EOF
  const request = readAll(target).then((req) => target.end(`got ${req.length}`));
  const answer = readAll(client);
  client.end('x'.repeat(100_000));
  await request;
  assert.equal((await answer).toString(), 'got 100000');
  client.end();
  const counts = await done;
  assert.equal(counts.aToB, 100_000);
  assert.equal(counts.bToA, 'got 100000'.length);
  assert.equal(counts.error, undefined);
});

test('relay carries a source that was paused before the relay attached (regression: a SOCKS answer that never came)', async () => {
  const [client, hubSide] = await socketPair();
  const [agentSide, target] = await socketPair();
  // As a CONNECT client hands its socket over: paused, with bytes that arrived early put back.
  agentSide.pause();
  agentSide.unshift(Buffer.from('early '));
  const done = relay(hubSide, agentSide);
  const answer = readAll(client);
  target.end('late');
  client.end();
  assert.equal((await answer).toString(), 'early late');
  assert.equal((await done).error, undefined);
});

test('relay aborts the other side with a reset when one side fails', async () => {
  const [client, hubSide] = await socketPair();
  const [agentSide, target] = await socketPair();
  const done = relay(hubSide, agentSide);
  // (events.once would reject on 'error', which is the outcome this test wants to observe)
  const clientError = new Promise<NodeJS.ErrnoException | undefined>((resolve) => client.once('error', resolve).once('close', () => resolve(undefined)));
  target.resetAndDestroy();
  const counts = await done;
  assert.ok(counts.error, 'relay reports the abnormal end');
  assert.equal((await clientError)?.code, 'ECONNRESET', 'the client sees a reset, not a clean EOF');
});

test('backoff: full jitter under a capped exponential ceiling', () => {
  const ceilings: number[] = [];
  const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
  for (let i = 0; i < 6; i++) ceilings.push(b.next());
  assert.deepEqual(ceilings, [99, 199, 399, 799, 999, 999]);
  b.reset();
  assert.equal(b.next(), 99);
  const zero = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 });
  assert.equal(zero.next(), 0);
});

test('a tunnel stream reset while data is still buffered, after our side ended, aborts the other side instead of ending it', async (t) => {
  // Node ends such a stream's readable side like an END_STREAM once the buffered data is read (its
  // writable side had ended, so no 'aborted'); only its rstCode tells. The relay must not pass a FIN on.
  const server = http2.createServer();
  const serverStream = new Promise<http2.ServerHttp2Stream>((resolve) => server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    // More than the stream's flow-control window: the rest waits in the server while the client reads nothing.
    stream.write(Buffer.alloc(1024 * 1024, 7));
    resolve(stream);
  }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  t.after(() => (session.destroy(), server.close()));
  const stream = session.request({ ':path': '/' }, { endStream: true });
  // The other side reads nothing at first: the relay pauses the tunnel stream, whose data stays buffered.
  const other = new PassThrough({ highWaterMark: 1024 });
  let endedCleanly = false;
  other.on('finish', () => (endedCleanly = true));
  const done = relay(stream, other);
  await once(stream, 'data');
  const sender = await serverStream;
  sender.close(http2.constants.NGHTTP2_CANCEL);
  // A PING answered after the reset means the client has read the reset.
  await withDeadline(new Promise<void>((resolve, reject) => sender.session!.ping((err) => (err ? reject(err) : resolve()))), 5_000, 'a ping after the reset');
  assert.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL);
  other.resume();
  const r = await withDeadline(done, 5_000, 'the relay ending');
  assert.equal(endedCleanly, false, 'the other side was ended with a FIN');
  assert.ok(other.destroyed);
  assert.match(String(r.error?.message), /tunnel stream reset \(code 8\)/);
});

/**
 * The keepalive against a real HTTP/2 peer behind a TCP hop that can go silent (a partition: no FIN,
 * no RST, nothing): answered pings report their RTT, and a peer that stops answering is declared dead
 * within two intervals — also once the session is closing (the peer sent GOAWAY and streams drain),
 * when Node sends no PING at all — pinging every interval, or listening to a peer that pings (a hub to
 * its agents), which then sends only the pings the RTT needs.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { withDeadline } from '../../test/support/proc.js';
import { startKeepalive } from './keepalive.js';

const INTERVAL_MS = 100;

for (const listen of [false, true]) {
  for (const closing of [false, true]) {
    const how = [listen ? 'listening' : 'pinging', ...(closing ? ['session closing after its GOAWAY'] : [])].join(', ');
    test(`a peer that stops answering is declared dead within two intervals (${how})`, (t) => silentPeer(t, closing, listen));
  }
}

test('listening to a peer that pings every interval: alive, and a ping of its own only for the RTT', async (t) => {
  const h2 = http2.createServer();
  let pingsToPeer = 0;
  h2.on('session', (peer) => {
    peer.on('ping', () => pingsToPeer++);
    // The peer pings as an agent does; twelve answers are twelve intervals.
    let answers = 0;
    const stop = startKeepalive(peer, { intervalMs: INTERVAL_MS, onRtt: () => ++answers === 12 && h2.emit('twelve'), onDead: () => undefined });
    t.after(stop);
  });
  const session = await connectThroughHop(t, h2, () => false);
  let rtts = 0;
  let died = false;
  const stop = startKeepalive(session, { intervalMs: INTERVAL_MS, listen: true, onRtt: () => rtts++, onDead: () => (died = true) });
  t.after(stop);
  await withDeadline(once(h2, 'twelve'), 40 * INTERVAL_MS, 'twelve pings from the peer answered');
  assert.equal(died, false);
  // One ping at the start and one every six intervals; a pinging keepalive would have sent twelve.
  // Timers fire late on a busy machine, which may leave a window without the peer's ping: a few more,
  // never half as many as pinging would send.
  assert.ok(pingsToPeer >= 2 && pingsToPeer <= 6, `${pingsToPeer} pings sent to a peer that pings`);
  assert.ok(rtts >= 2, `${rtts} RTTs measured`);
});

/** An HTTP/2 session to `h2` through a TCP hop that drops every byte while `silent()`. */
async function connectThroughHop(t: TestContext, h2: http2.Http2Server, silent: () => boolean): Promise<http2.ClientHttp2Session> {
  h2.listen(0, '127.0.0.1');
  await withDeadline(once(h2, 'listening'), 5_000, 'the HTTP/2 peer listening');
  // The hop forwards bytes both ways until `silent`, then drops them: the peer looks alive to TCP.
  const hop = net.createServer((inbound) => {
    const outbound = net.connect((h2.address() as net.AddressInfo).port, '127.0.0.1');
    inbound.on('data', (c: Buffer) => silent() || outbound.write(c));
    outbound.on('data', (c: Buffer) => silent() || inbound.write(c));
    for (const s of [inbound, outbound]) s.on('error', () => undefined);
    t.after(() => (inbound.destroy(), outbound.destroy()));
  });
  hop.listen(0, '127.0.0.1');
  await withDeadline(once(hop, 'listening'), 5_000, 'the TCP hop listening');
  t.after(() => (hop.close(), h2.close()));

  const session = http2.connect(`http://127.0.0.1:${(hop.address() as net.AddressInfo).port}`);
  session.on('error', () => undefined);
  t.after(() => session.destroy());
  return session;
}

async function silentPeer(t: TestContext, closing: boolean, listen: boolean): Promise<void> {
  const h2 = http2.createServer();
  // The peer drains: GOAWAY once a stream is open, which keeps the session (closing) while it lasts.
  h2.on('stream', (stream) => (stream.respond(), stream.session?.close()));
  let silent = false;
  const session = await connectThroughHop(t, h2, () => silent);
  if (closing) {
    session.request({ ':path': '/' }).on('error', () => undefined);
    await withDeadline(once(session, 'goaway'), 10 * INTERVAL_MS, 'the peer\'s GOAWAY');
  }
  assert.equal(session.closed, closing);
  let rtts = 0;
  let answered!: () => void;
  const twoAnswers = new Promise<void>((resolve) => (answered = resolve));
  let silentSince = 0;
  let dead!: (ms: number) => void;
  const declaredDead = new Promise<number>((resolve) => (dead = resolve));
  const stop = startKeepalive(session, {
    intervalMs: INTERVAL_MS,
    listen,
    onRtt: () => {
      if (++rtts === 2) answered();
    },
    onDead: () => dead(performance.now() - silentSince),
  });
  t.after(stop);

  await withDeadline(twoAnswers, 10 * INTERVAL_MS, 'two answered pings from a live peer');
  silent = true;
  silentSince = performance.now();
  const afterMs = await withDeadline(declaredDead, 10 * INTERVAL_MS, 'the silent peer being declared dead');
  // Timers fire late on a busy machine, never early: a little slack over two intervals, no more.
  assert.ok(afterMs <= 2 * INTERVAL_MS + 60, `declared dead ${afterMs.toFixed(0)} ms after going silent`);
  // A pinging keepalive gives its ping an interval to be answered; a listening one, which pings only
  // after an interval of silence, gives it half.
  const deadline = listen ? INTERVAL_MS / 2 : INTERVAL_MS;
  assert.ok(afterMs >= deadline - 5, `not before a ping could have been missed (${afterMs.toFixed(0)} ms)`);
}

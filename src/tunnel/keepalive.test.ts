/**
 * The keepalive against a real HTTP/2 peer behind a TCP hop that can go silent (a partition: no FIN,
 * no RST, nothing): answered pings report their RTT, and a peer that stops answering is declared dead
 * within two intervals.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import { withDeadline } from '../../test/support/proc.js';
import { startKeepalive } from './keepalive.js';

const INTERVAL_MS = 100;

test('a peer that stops answering PINGs is declared dead within two intervals', async (t) => {
  const h2 = http2.createServer();
  h2.listen(0, '127.0.0.1');
  await withDeadline(once(h2, 'listening'), 5_000, 'the HTTP/2 peer listening');
  // The hop forwards bytes both ways until `silent`, then drops them: the peer looks alive to TCP.
  let silent = false;
  const hop = net.createServer((inbound) => {
    const outbound = net.connect((h2.address() as net.AddressInfo).port, '127.0.0.1');
    inbound.on('data', (c: Buffer) => silent || outbound.write(c));
    outbound.on('data', (c: Buffer) => silent || inbound.write(c));
    for (const s of [inbound, outbound]) s.on('error', () => undefined);
    t.after(() => (inbound.destroy(), outbound.destroy()));
  });
  hop.listen(0, '127.0.0.1');
  await withDeadline(once(hop, 'listening'), 5_000, 'the TCP hop listening');
  t.after(() => (hop.close(), h2.close()));

  const session = http2.connect(`http://127.0.0.1:${(hop.address() as net.AddressInfo).port}`);
  session.on('error', () => undefined);
  t.after(() => session.destroy());
  let rtts = 0;
  let answered!: () => void;
  const twoAnswers = new Promise<void>((resolve) => (answered = resolve));
  let silentSince = 0;
  let dead!: (ms: number) => void;
  const declaredDead = new Promise<number>((resolve) => (dead = resolve));
  const stop = startKeepalive(session, {
    intervalMs: INTERVAL_MS,
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
  assert.ok(afterMs >= INTERVAL_MS - 5, `not before a ping could have been missed (${afterMs.toFixed(0)} ms)`);
});

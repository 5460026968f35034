import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { InFlight } from './inFlight.js';

test('settled() resolves when the last piece of work ends; an end called twice counts once', async () => {
  const f = new InFlight();
  const a = f.begin();
  const b = f.begin();
  let settled = false;
  const done = f.settled(60_000).then(() => (settled = true));
  a();
  a();
  await Promise.resolve();
  assert.equal(f.size, 1);
  assert.equal(settled, false);
  b();
  await done;
  assert.equal(f.size, 0);
});

test('settled() resolves after its timeout while work is still counted, and at once when nothing is', async () => {
  const f = new InFlight();
  await f.settled(0);
  f.begin();
  const started = performance.now();
  await f.settled(20);
  assert.ok(performance.now() - started >= 15);
  assert.equal(f.size, 1);
});

test("untilClose() ends the count at the emitter's close", async () => {
  const f = new InFlight();
  const socket = new EventEmitter();
  f.untilClose(socket);
  const done = f.settled(60_000);
  socket.emit('close');
  await done;
  assert.equal(f.size, 0);
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { duplexPair } from './duplexPair.js';

/** Everything `s` yields until its end (without destroying it afterwards, as `for await` would). */
function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks));
}

test('bytes written on one side are read on the other, both ways, and each half-close is carried alone', async () => {
  const [a, b] = duplexPair();
  const up = randomBytes(3 << 20);
  const down = randomBytes(1 << 20);
  const readB = readAll(b);
  a.end(up);
  // a's write half is done; b can still answer and a still reads it.
  const readA = readAll(a);
  assert.deepEqual(await readB, up);
  b.end(down);
  assert.deepEqual(await readA, down);
});

test('a writer waits for the reader (backpressure) instead of buffering without bound', async () => {
  const [a, b] = duplexPair();
  let written = 0;
  while (a.write(Buffer.alloc(64 * 1024))) written += 64 * 1024;
  assert.ok(written < 1 << 20, `wrote ${written} bytes before write() asked to wait`);
  const drained = once(a, 'drain');
  b.resume();
  await drained;
});

test('destroying one side destroys the other with the same error', async () => {
  const [a, b] = duplexPair();
  const closed = new Promise((r) => b.once('close', r));
  const failed = once(b, 'error');
  a.on('error', () => undefined);
  a.destroy(new Error('cut'));
  const [err] = (await failed) as [Error];
  assert.equal(err.message, 'cut');
  await closed;
  assert.equal(b.destroyed, true);
});

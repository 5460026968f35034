import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { Quotas } from './quotas.js';

const quota = (kind: string) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_QUOTA' && err.status === 429 && err.details?.quota === kind;

test('a principal holds at most perPrincipal streams; releasing one makes room, other principals are not affected', () => {
  const q = new Quotas({ perPrincipal: 3, ratePerSecond: 0, perAgent: 0 });
  const held = [q.acquire('ana'), q.acquire('ana'), q.acquire('ana')];
  assert.throws(() => q.acquire('ana'), quota('principal-streams'));
  assert.throws(() => q.acquire('ana'), /--max-streams-per-principal 3/);
  q.acquire('bob').release();
  held[0]!.release();
  held[0]!.release(); // idempotent: a second release frees nothing more
  q.acquire('ana');
  assert.throws(() => q.acquire('ana'), quota('principal-streams'));
});

test('new streams per second: a burst of one second passes, then the rate holds, and time refills the bucket', () => {
  let now = 0;
  const q = new Quotas({ perPrincipal: 0, ratePerSecond: 10, perAgent: 0 }, () => now);
  for (let i = 0; i < 10; i++) q.acquire('ana').release();
  assert.throws(() => q.acquire('ana'), quota('principal-rate'));
  assert.throws(() => q.acquire('ana'), (err: unknown) => err instanceof WarrenError && err.details?.retryAfterS === 1);
  q.acquire('bob');
  now += 100; // 1 token
  q.acquire('ana');
  assert.throws(() => q.acquire('ana'), quota('principal-rate'));
  now += 5_000; // never more than one second's worth
  for (let i = 0; i < 10; i++) q.acquire('ana');
  assert.throws(() => q.acquire('ana'), quota('principal-rate'));
});

test("an agent's streams are shared: alone a principal gets half, and a newcomer always gets in", () => {
  const q = new Quotas({ perPrincipal: 0, ratePerSecond: 0, perAgent: 8 });
  const ana = Array.from({ length: 5 }, () => q.acquire('ana'));
  assert.deepEqual(ana.map((s) => s.bindAgent('node1')), [true, true, true, true, false]);
  // The same slot may go elsewhere: another agent has its own share.
  assert.equal(ana[4]!.bindAgent('node2'), true);
  const bob = Array.from({ length: 3 }, () => q.acquire('bob'));
  // With two principals on node1 each may hold 8 / 3 → 2: bob gets 2, ana (holding 4) no more.
  assert.deepEqual(bob.map((s) => s.bindAgent('node1')), [true, true, false]);
  assert.deepEqual(Object.fromEntries(q.heldOn('node1')), { ana: 4, bob: 2 });
  for (const s of ana) s.release();
  assert.deepEqual(Object.fromEntries(q.heldOn('node1')), { bob: 2 });
  assert.equal(q.heldOn('node2').size, 0);
});

test('0 means no limit', () => {
  const q = new Quotas({ perPrincipal: 0, ratePerSecond: 0, perAgent: 0 });
  for (let i = 0; i < 10_000; i++) assert.equal(q.acquire('ana').bindAgent('node1'), true);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VerifiedTokens } from './verifiedTokens.js';

test('a remembered check holds until its second, then is forgotten; another token is not it', () => {
  const v = new VerifiedTokens<string>();
  assert.equal(v.get('t1', 100), undefined);
  v.set('t1', 'ana', 200);
  assert.equal(v.get('t1', 199), 'ana');
  assert.equal(v.get('t1x', 150), undefined);
  assert.equal(v.get('t1', 200), undefined, 'expired at its second');
  assert.equal(v.get('t1', 150), undefined, 'and forgotten, not revived by an earlier clock');
});

test('at most 10,000 tokens: the oldest is forgotten first', () => {
  const v = new VerifiedTokens<number>();
  for (let i = 0; i <= 10_000; i++) v.set(`t${i}`, i, Infinity);
  assert.equal(v.get('t0', 0), undefined);
  assert.equal(v.get('t1', 0), 1);
  assert.equal(v.get('t10000', 0), 10_000);
});

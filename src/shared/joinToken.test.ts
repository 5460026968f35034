import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatJoinToken, parseJoinToken, newJoinSecret, hashSecret, secretMatches } from './joinToken.js';

const pin = 'sha256:' + 'ab'.repeat(32);

test('join tokens round-trip and carry hub URL, CA pin, id and secret', () => {
  const { id, secret } = newJoinSecret();
  const text = formatJoinToken({ hubUrl: 'https://hub.example.com:8443', caPin: pin, id, secret });
  assert.match(text, /^wj1\./);
  assert.deepEqual(parseJoinToken(text), { hubUrl: 'https://hub.example.com:8443', caPin: pin, id, secret });
});

test('malformed tokens are rejected without throwing', () => {
  const { id, secret } = newJoinSecret();
  const good = formatJoinToken({ hubUrl: 'https://h:1', caPin: pin, id, secret });
  const parts = good.split('.');
  const variants = [
    '', 'wj1', good + '.x', good.replace('wj1', 'wj2'),
    [parts[0], Buffer.from('http://h:1').toString('base64url'), ...parts.slice(2)].join('.'),
    [...parts.slice(0, 2), 'zz', ...parts.slice(3)].join('.'),
    [...parts.slice(0, 3), 'short', parts[4]].join('.'),
    [...parts.slice(0, 4), 'short'].join('.'),
  ];
  for (const v of variants) assert.equal(parseJoinToken(v), undefined, v);
});

test('secrets are stored hashed and compared in constant time', () => {
  const { secret } = newJoinSecret();
  const h = hashSecret(secret);
  assert.notEqual(h.toString('utf8'), secret);
  assert.ok(secretMatches(secret, h));
  assert.ok(!secretMatches(secret + 'x', h));
  assert.ok(!secretMatches(secret, Buffer.alloc(5)));
});

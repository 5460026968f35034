import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WarrenError } from '../errors.js';
import { hubConfig } from './config.js';

const base = { dataDir: '/tmp/warren-hub-config-test' };

test('--max-handshakes defaults to 64 and takes a whole number', () => {
  assert.equal(hubConfig(base, {}).maxHandshakes, 64);
  assert.equal(hubConfig({ ...base, maxHandshakes: '500' }, {}).maxHandshakes, 500);
});

test('--max-handshakes rejects 0, negatives, fractions and words with WARREN_E_CONFIG naming the flag', () => {
  for (const bad of ['0', '-1', '1.5', 'many', '', '1000000']) {
    assert.throws(
      () => hubConfig({ ...base, maxHandshakes: bad }, {}),
      (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && err.message.includes('--max-handshakes') && err.message.includes(`"${bad}"`),
      bad,
    );
  }
});

test('--max-user-cert-ttl defaults to 7d and rejects what is not a duration, naming the flag', () => {
  assert.equal(hubConfig(base, {}).maxUserCertTtlMs, 7 * 86_400_000);
  assert.equal(hubConfig({ ...base, maxUserCertTtl: '12h' }, {}).maxUserCertTtlMs, 12 * 3_600_000);
  assert.throws(
    () => hubConfig({ ...base, maxUserCertTtl: 'forever' }, {}),
    (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && err.message.includes('--max-user-cert-ttl'),
  );
});

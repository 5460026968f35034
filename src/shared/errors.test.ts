import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCodes, WarrenError, asWarrenError, isErrorCode } from './errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

test('every error code is documented in docs/errors.md with its HTTP status', () => {
  for (const [code, spec] of Object.entries(ErrorCodes)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} missing from docs/errors.md`);
    assert.match(row, new RegExp(`\\| ${spec.status} \\|`), `${code} documented with the wrong HTTP status`);
    assert.match(row, new RegExp(`\\| 0x0${spec.socks.toString(16)} `), `${code} documented with the wrong SOCKS reply`);
  }
});

test('docs/errors.md documents no code that does not exist', () => {
  for (const m of doc.matchAll(/`(WARREN_E_[A-Z_]+)`/g)) assert.ok(isErrorCode(m[1]), `${m[1]} is documented but not defined`);
});

test('WarrenError carries status, SOCKS reply and a JSON body without the stack', () => {
  const e = new WarrenError('WARREN_E_UNKNOWN_TARGET', 'no agent serves host "x"', { host: 'x' });
  assert.equal(e.status, 502);
  assert.equal(e.socks, 0x04);
  assert.deepEqual(e.toJSON(), { code: 'WARREN_E_UNKNOWN_TARGET', message: 'no agent serves host "x"', host: 'x' });
});

test('unknown errors become WARREN_E_INTERNAL with a generic message (no internals leak)', () => {
  const e = asWarrenError(new Error('ENOENT /etc/secret/path'));
  assert.equal(e.code, 'WARREN_E_INTERNAL');
  assert.equal(e.message, 'internal error');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { matchesGlob } from './patterns.js';

/** The regular-expression reading of a glob that matchesGlob replaced: the reference for the property. */
function globRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
}

test('regression: a glob with many stars against a long crafted host answers at once (it held the event loop for seconds)', { timeout: 10_000 }, () => {
  // With `*` as `.*` these took 1 s, 20 s and hours: the test's timeout is the hang guard.
  assert.equal(matchesGlob('*.*.*.*.corp', 'a.'.repeat(126) + 'a'), false);
  assert.equal(matchesGlob('*-*-*-*-*-prod', 'a-'.repeat(126) + 'a'), false);
  assert.equal(matchesGlob('*a*a*a*a*a*a*a*a*b', 'a'.repeat(253)), false);
  assert.equal(matchesGlob('*a*a*a*a*a*a*a*a*b', 'a'.repeat(252) + 'b'), true);
});

test('globs: * any run, ? one character, case-insensitive, anchored', () => {
  const cases: Array<[string, string, boolean]> = [
    ['site-*', 'site-1', true], ['site-*', 'xsite-1', false], ['db-?', 'db-1', true], ['db-?', 'db-12', false],
    ['*', '', true], ['', '', true], ['', 'a', false], ['*.corp.internal', 'db.CORP.internal', true], ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false], ['**', 'x', true], ['?*', '', false], ['*x', 'xx', true], ['10.0.*', '10.0.3.4', true], ['10.0.*', '10x0.3.4', false],
  ];
  for (const [glob, value, want] of cases) assert.equal(matchesGlob(glob, value), want, `${glob} ~ ${value}`);
});

test('property: matchesGlob agrees with the regular-expression reading on short inputs', () => {
  const text = (max: number) => fc.string({ unit: fc.constantFrom('a', 'A', 'b', '-', '.', '*', '?', '[', '('), maxLength: max });
  fc.assert(
    fc.property(text(8), text(12), (glob, value) => {
      assert.equal(matchesGlob(glob, value), globRegExp(glob).test(value), `${glob} ~ ${value}`);
    }),
    { numRuns: 20_000 },
  );
});

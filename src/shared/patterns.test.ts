import assert from 'node:assert/strict';
import { test } from 'node:test';
import net from 'node:net';
import fc from 'fast-check';
import { cidrContains, ipValue, matchesGlob } from './patterns.js';

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

/** What cidrContains did before it computed with numbers: a net.BlockList per test (the reference). */
function blockListContains(cidr: string, ip: string): boolean {
  const [address = '', prefix = ''] = cidr.split('/');
  const family = net.isIP(address);
  if (family === 0 || net.isIP(ip) !== family || ip.includes('%')) return false;
  const list = new net.BlockList();
  list.addSubnet(address, Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
  return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

test('property: cidrContains agrees with net.BlockList on IPv4 and IPv6 (compressed, mapped, host bits set in the network)', () => {
  // A small address space, so that a good share of the pairs are inside each other.
  const v4 = fc.tuple(fc.constantFrom(10, 11), fc.constantFrom(0, 1, 128, 255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
  const group = fc.constantFrom('0', '1', 'a', 'fd00', 'fd01', 'ffff', '8000');
  const v6 = fc.oneof(
    fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => g.join(':')),
    fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => new URL(`http://[${g.join(':')}]/`).hostname.slice(1, -1)),
    v4.map((a) => `::ffff:${a}`),
    fc.ipV6(),
  );
  const pair = fc.oneof(
    fc.tuple(v4, fc.integer({ min: 0, max: 32 }), v4),
    fc.tuple(v6, fc.integer({ min: 0, max: 128 }), v6),
    fc.tuple(v4, fc.integer({ min: 0, max: 32 }), v6),
  );
  let inside = 0;
  fc.assert(
    fc.property(pair, ([base, prefix, ip]) => {
      const want = blockListContains(`${base}/${prefix}`, ip);
      assert.equal(cidrContains(`${base}/${prefix}`, ip), want, `${base}/${prefix} ∋ ${ip}`);
      if (want) inside++;
    }),
    { numRuns: 20_000 },
  );
  assert.ok(inside > 2_000, `only ${inside} of the pairs were inside: the property says little`);
});

test('ipValue: numbers for addresses, nothing for the rest', () => {
  assert.deepEqual(ipValue('10.0.0.1'), { family: 4, value: 0x0a000001n });
  assert.deepEqual(ipValue('::1'), { family: 6, value: 1n });
  assert.deepEqual(ipValue('::ffff:10.0.0.1'), { family: 6, value: 0xffff0a000001n });
  assert.deepEqual(ipValue('fd00::'), { family: 6, value: 0xfd00n << 112n });
  for (const bad of ['fe80::1%eth0', 'node1', '10.0.0', '', '1.2.3.4/8']) assert.equal(ipValue(bad), undefined, bad);
  assert.equal(cidrContains('not a cidr', '10.0.0.1'), false);
  assert.equal(cidrContains('10.0.0.0/8', 'node1'), false);
});

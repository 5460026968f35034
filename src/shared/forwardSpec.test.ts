import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeBindError, entriesClash, formatEntry, parseAllowFrom, parseEntry, sourceAllowed, type ForwardEntry } from './forwardSpec.js';

test('entry grammar: hub and agent entries, with and without a bind address', () => {
  const table: Array<[string, ForwardEntry]> = [
    ['hub:8080', { kind: 'hub', host: '0.0.0.0', port: 8080 }],
    ['hub:127.0.0.1:8080', { kind: 'hub', host: '127.0.0.1', port: 8080 }],
    ['hub:[::1]:8080', { kind: 'hub', host: '::1', port: 8080 }],
    ['hub:[FD00:0::1]:1', { kind: 'hub', host: 'fd00::1', port: 1 }],
    ['HUB:0', { kind: 'hub', host: '0.0.0.0', port: 0 }],
    ['alpha:5432', { kind: 'agent', agent: 'alpha', host: '0.0.0.0', port: 5432 }],
    ['edge-1:10.0.0.5:6443', { kind: 'agent', agent: 'edge-1', host: '10.0.0.5', port: 6443 }],
  ];
  for (const [text, want] of table) assert.deepEqual(parseEntry(text), want, text);
});

test('entry grammar: malformed entries say what is wrong', () => {
  const table: Array<[string, RegExp]> = [
    ['8080', /is not hub:\[ADDR:\]PORT/],
    [':8080', /is not hub:/],
    ['hub:', /is not a port/],
    ['hub:65536', /is not a port/],
    ['hub:http', /is not a port/],
    ['hub:localhost:80', /not an IP address/],
    ['hub:::1:80', /is not a port|not an IP/],
    ['hub:[10.0.0.1]:80', /not an IP address/],
    ['Bad_Agent!:80', /neither "hub" nor an agent name/],
    ['hub:1.2.3.4:5:6', /is not a port/],
    // Regression: an IPv6 zone id threw (TypeError: Invalid URL), which the hub API answered with a 500.
    ['hub:[fe80::1%eth0]:80', /not an IP address/],
    ['hub:[fe80::1%25]:80', /not an IP address/],
  ];
  for (const [text, re] of table) {
    const r = parseEntry(text);
    assert.ok('error' in r, `${text} should be refused`);
    assert.match(r.error, re, text);
  }
});

test('formatEntry is canonical and parses back to the same entry', () => {
  for (const text of ['hub:8080', 'hub:[::1]:9', 'alpha:10.1.2.3:22', 'beta:0']) {
    const e = parseEntry(text) as ForwardEntry;
    assert.deepEqual(parseEntry(formatEntry(e)), e);
  }
  assert.equal(formatEntry(parseEntry('hub:[::1]:9') as ForwardEntry), 'hub:[::1]:9');
  assert.equal(formatEntry(parseEntry('alpha:22') as ForwardEntry), 'alpha:0.0.0.0:22');
});

test('allow-from: CIDRs and single addresses; bad items named', () => {
  assert.deepEqual(parseAllowFrom(['10.0.0.0/8', ' 192.168.1.7 ', '', 'fd00::/8', '::1']), ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8', '::1/128']);
  assert.match((parseAllowFrom(['10.0.0.0/33']) as { error: string }).error, /"10\.0\.0\.0\/33" is not a CIDR/);
  assert.match((parseAllowFrom(['example.com']) as { error: string }).error, /example\.com/);
});

test('sourceAllowed: empty list admits all; v4-mapped v6 sources match v4 CIDRs; unknown source refused', () => {
  assert.equal(sourceAllowed([], '203.0.113.9'), true);
  assert.equal(sourceAllowed([], undefined), true);
  const list = ['10.0.0.0/8', 'fd00::/8'];
  assert.equal(sourceAllowed(list, '10.9.8.7'), true);
  assert.equal(sourceAllowed(list, '::ffff:10.9.8.7'), true);
  assert.equal(sourceAllowed(list, 'fd00::5'), true);
  assert.equal(sourceAllowed(list, '127.0.0.1'), false);
  assert.equal(sourceAllowed(list, '::ffff:127.0.0.1'), false);
  assert.equal(sourceAllowed(list, undefined), false);
});

test('entriesClash: same place and port clash; wildcards overlap; port 0 and other agents never clash', () => {
  const e = (t: string) => parseEntry(t) as ForwardEntry;
  assert.equal(entriesClash(e('hub:80'), e('hub:80')), true);
  assert.equal(entriesClash(e('hub:80'), e('hub:127.0.0.1:80')), true);
  assert.equal(entriesClash(e('hub:127.0.0.2:80'), e('hub:127.0.0.1:80')), false);
  assert.equal(entriesClash(e('hub:0'), e('hub:0')), false);
  assert.equal(entriesClash(e('hub:80'), e('alpha:80')), false);
  assert.equal(entriesClash(e('alpha:80'), e('beta:80')), false);
  assert.equal(entriesClash(e('alpha:80'), e('alpha:80')), true);
});

test('bind errors read as the reason and carry WARREN_E_LISTEN_FAILED', () => {
  const err = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
  assert.deepEqual(describeBindError(err, '0.0.0.0:80'), { code: 'WARREN_E_LISTEN_FAILED', message: 'cannot listen on 0.0.0.0:80: the address is in use' });
  assert.match(describeBindError(Object.assign(new Error('x'), { code: 'EACCES' }), ':22').message, /permission denied/);
});

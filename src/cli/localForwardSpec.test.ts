import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WarrenError } from '../shared/errors.js';
import { isLoopback, parseForwardSpec } from './localForwardSpec.js';

test('forward specs, like ssh -L', () => {
  const table: Array<[string, string, number, string]> = [
    ['5432:db.alpha.warren:5432', '127.0.0.1', 5432, 'db.alpha.warren:5432'],
    ['127.0.0.1:5432:db.alpha.warren:5432', '127.0.0.1', 5432, 'db.alpha.warren:5432'],
    ['0.0.0.0:8080:10.20.0.5:80', '0.0.0.0', 8080, '10.20.0.5:80'],
    ['*:8080:10.20.0.5:80', '0.0.0.0', 8080, '10.20.0.5:80'],
    [':8080:10.20.0.5:80', '0.0.0.0', 8080, '10.20.0.5:80'],
    ['[::1]:2222:node1:22', '::1', 2222, 'node1:22'],
    ['127.0.0.1:0:node1:22', '127.0.0.1', 0, 'node1:22'],
    ['2222:[FD00::0005]:22', '127.0.0.1', 2222, '[fd00::5]:22'],
    ['localhost:15432:DB.Alpha.Warren:5432', 'localhost', 15432, 'db.alpha.warren:5432'],
  ];
  for (const [text, host, port, target] of table) {
    assert.deepEqual(parseForwardSpec(text), { listen: { host, port }, target }, text);
  }
});

test('malformed forward specs are usage errors that show an example', () => {
  for (const text of ['db:5432', '5432', '5432:db:0', '5432:db:65536', '99999:db:22', '5432:bad host:22', 'a:b:c:d:e', '']) {
    assert.throws(
      () => parseForwardSpec(text),
      (e: WarrenError) => e.code === 'WARREN_E_USAGE' && e.message.includes('127.0.0.1:5432:db.alpha.warren:5432'),
      text,
    );
  }
});

test('loopback addresses', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1']) assert.ok(!isLoopback(h), h);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeListenerReport, decodeListenerSet, encodeListenerReport, encodeListenerSet, MAX_LISTENER_BODY } from './listenerSet.js';

const utf8 = (s: string) => Buffer.from(s, 'utf8');

test('a listener set round-trips through its exact JSON', () => {
  const set = { listeners: [{ forward: 'pg', host: '0.0.0.0', port: 5432 }, { forward: 'web-1', host: '::1', port: 0 }] };
  const json = '{"listeners":[{"forward":"pg","host":"0.0.0.0","port":5432},{"forward":"web-1","host":"::1","port":0}]}';
  assert.equal(encodeListenerSet(set), json);
  assert.deepEqual(decodeListenerSet(utf8(json)), { kind: 'ok', value: set });
});

test('a listener report round-trips, with a bound address and a bind error', () => {
  const report = {
    listeners: [
      { forward: 'pg', listening: true, address: '0.0.0.0:5432' },
      { forward: 'web', listening: false, error: { code: 'WARREN_E_LISTEN_FAILED', message: '0.0.0.0:80 is in use' } },
    ],
  };
  const json = '{"listeners":[{"forward":"pg","listening":true,"address":"0.0.0.0:5432"},{"forward":"web","listening":false,"error":{"code":"WARREN_E_LISTEN_FAILED","message":"0.0.0.0:80 is in use"}}]}';
  assert.equal(encodeListenerReport(report), json);
  assert.deepEqual(decodeListenerReport(utf8(json)), { kind: 'ok', value: report });
});

test('a malformed listener set is a clean error', () => {
  const cases: Array<[string, string]> = [
    ['empty body', ''],
    ['not JSON', '{"listeners":['],
    ['no listeners', '{}'],
    ['listeners not an array', '{"listeners":{}}'],
    ['upper-case forward name', '{"listeners":[{"forward":"PG","host":"0.0.0.0","port":1}]}'],
    ['host not an IP', '{"listeners":[{"forward":"pg","host":"example.com","port":1}]}'],
    ['port out of range', '{"listeners":[{"forward":"pg","host":"0.0.0.0","port":65536}]}'],
    ['fractional port', '{"listeners":[{"forward":"pg","host":"0.0.0.0","port":1.5}]}'],
    ['port as a string', '{"listeners":[{"forward":"pg","host":"0.0.0.0","port":"22"}]}'],
  ];
  for (const [name, body] of cases) assert.equal(decodeListenerSet(utf8(body)).kind, 'error', name);
});

test('a malformed listener report is a clean error', () => {
  const cases: Array<[string, string]> = [
    ['not JSON', 'nope'],
    ['listening missing', '{"listeners":[{"forward":"pg"}]}'],
    ['oversized forward name', JSON.stringify({ listeners: [{ forward: 'f'.repeat(64), listening: true }] })],
    ['oversized error message', JSON.stringify({ listeners: [{ forward: 'f', listening: false, error: { code: 'C', message: 'm'.repeat(1001) } }] })],
  ];
  for (const [name, body] of cases) assert.equal(decodeListenerReport(utf8(body)).kind, 'error', name);
});

test('more than 10,000 listeners, or a body over the byte limit, is refused before or without parsing', () => {
  const many = { listeners: Array.from({ length: 10_001 }, (_, i) => ({ forward: `f${i}`, host: '0.0.0.0', port: 0 })) };
  assert.equal(decodeListenerSet(utf8(JSON.stringify(many))).kind, 'error');
  const big = Buffer.alloc(MAX_LISTENER_BODY + 1, 0x20);
  assert.deepEqual(decodeListenerSet(big), { kind: 'error', reason: `listener set is larger than ${MAX_LISTENER_BODY} bytes` });
  assert.deepEqual(decodeListenerReport(big), { kind: 'error', reason: `listener report is larger than ${MAX_LISTENER_BODY} bytes` });
});

test('no byte string makes either decoder throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void (decodeListenerSet(bytes), decodeListenerReport(bytes))));
  fc.assert(fc.property(fc.json(), (json) => void (decodeListenerSet(utf8(json)), decodeListenerReport(utf8(json)))));
});

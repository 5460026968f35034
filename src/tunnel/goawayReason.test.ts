import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeGoawayReason, encodeGoawayReason, MAX_GOAWAY_REASON_BYTES } from './goawayReason.js';

const revoked = { code: 'WARREN_E_AGENT_REVOKED', message: 'agent "a1" was removed from the hub; join again with a new token' };

test('a GOAWAY reason is the refusal as JSON, byte for byte', () => {
  assert.equal(
    encodeGoawayReason(revoked).toString('hex'),
    Buffer.from('{"code":"WARREN_E_AGENT_REVOKED","message":"agent \\"a1\\" was removed from the hub; join again with a new token"}').toString('hex'),
  );
  assert.deepEqual(decodeGoawayReason(encodeGoawayReason(revoked)), revoked);
});

test('only code and message travel', () => {
  const withExtra = { ...revoked, token: 'secret' } as typeof revoked;
  assert.deepEqual(JSON.parse(encodeGoawayReason(withExtra).toString()), revoked);
});

test('a plain GOAWAY and data that is not a reason decode to no reason, never a throw', () => {
  const cases: Array<[string, Uint8Array | undefined]> = [
    ['no data', undefined],
    ['empty data', Buffer.alloc(0)],
    ['not JSON', Buffer.from('7b22636f6465', 'hex')],
    ['invalid UTF-8', Buffer.from('ff fe fd'.replace(/ /g, ''), 'hex')],
    ['JSON null', Buffer.from('null')],
    ['a JSON string', Buffer.from('"WARREN_E_AGENT_REVOKED"')],
    ['an array', Buffer.from('[1,2]')],
    ['no code', Buffer.from('{"message":"m"}')],
    ['an empty code', Buffer.from('{"code":"","message":"m"}')],
    ['a numeric code', Buffer.from('{"code":7,"message":"m"}')],
    ['no message', Buffer.from('{"code":"WARREN_E_AGENT_REVOKED"}')],
    ['an oversized code', Buffer.from(JSON.stringify({ code: 'C'.repeat(65), message: 'm' }))],
    ['oversized data', Buffer.from(JSON.stringify({ code: 'WARREN_E_AGENT_REVOKED', message: 'm'.repeat(MAX_GOAWAY_REASON_BYTES) }))],
  ];
  for (const [name, data] of cases) assert.equal(decodeGoawayReason(data), undefined, name);
});

test('a long message inside the byte limit is cut to a bounded length', () => {
  const r = decodeGoawayReason(Buffer.from(JSON.stringify({ code: 'WARREN_E_X', message: 'm'.repeat(5000) })));
  assert.equal(r?.message.length, 1000);
});

test('no byte string makes the decoder throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => void decodeGoawayReason(bytes)));
  fc.assert(fc.property(fc.json(), (json) => void decodeGoawayReason(Buffer.from(json))));
});

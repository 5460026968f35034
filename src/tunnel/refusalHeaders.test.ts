import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { decodeRefusalHeaders, encodeRefusalHeaders, MAX_REFUSAL_MESSAGE, refuseStream } from './refusalHeaders.js';

const fallback = { code: 'WARREN_E_TUNNEL_LOST', message: 'agent "a1" refused the stream' } as const;

test('a refusal encodes as its HTTP status and the two warren headers', () => {
  const e = new WarrenError('WARREN_E_AGENT_REFUSED', 'agent refuses 10.0.0.9:22: not in its allow-list (--allow)');
  assert.deepEqual(encodeRefusalHeaders(e), {
    ':status': 403,
    'warren-error': 'WARREN_E_AGENT_REFUSED',
    'warren-message': 'agent refuses 10.0.0.9:22: not in its allow-list (--allow)',
  });
});

test('decode(encode(x)) gives back the code and the message', () => {
  const e = new WarrenError('WARREN_E_TARGET_REFUSED', 'agent: connection to db:5432 refused');
  // The sent headers are what the peer receives (status aside, which decoding does not read).
  const received = encodeRefusalHeaders(e) as unknown as http2.IncomingHttpHeaders;
  assert.deepEqual(decodeRefusalHeaders(received, fallback), { code: 'WARREN_E_TARGET_REFUSED', message: 'agent: connection to db:5432 refused' });
});

test('control characters in a message become spaces, so respond() never throws on them', () => {
  const h = encodeRefusalHeaders(new WarrenError('WARREN_E_BAD_TARGET', 'line one\r\nline two\x00\tend'));
  assert.equal(h['warren-message'], 'line one line two end');
});

test('a message longer than the limit is cut on both ends', () => {
  const long = 'x'.repeat(5000);
  assert.equal(String(encodeRefusalHeaders(new WarrenError('WARREN_E_INTERNAL', long))['warren-message']).length, MAX_REFUSAL_MESSAGE);
  assert.equal(decodeRefusalHeaders({ 'warren-message': long }, fallback).message.length, MAX_REFUSAL_MESSAGE);
});

test('malformed refusal headers fall back instead of throwing', () => {
  const cases: Array<[string, http2.IncomingHttpHeaders]> = [
    ['no headers at all', {}],
    ['a code outside the registry', { 'warren-error': 'WARREN_E_FROM_THE_FUTURE' }],
    ['a prototype key as the code', { 'warren-error': 'toString' }],
    ['an empty message', { 'warren-error': '', 'warren-message': '' }],
    ['a repeated header (array)', { 'warren-error': ['a', 'b'], 'warren-message': ['m', 'n'] }],
  ];
  for (const [name, h] of cases) assert.deepEqual(decodeRefusalHeaders(h, fallback), fallback, name);
});

test('refuseStream answers once over a real HTTP/2 stream, and cancels a stream that already answered', async (t) => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    if (headers[':path'] === '/answered') stream.respond({ ':status': 200 });
    refuseStream(stream, new WarrenError('WARREN_E_NOT_FOUND', 'agent: nothing at GET /x'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = http2.connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  t.after(() => (client.close(), server.close()));

  const refused = client.request({ ':path': '/x' });
  const [headers] = (await once(refused, 'response')) as [http2.IncomingHttpHeaders];
  assert.equal(headers[':status'], 404);
  assert.deepEqual(decodeRefusalHeaders(headers, fallback), { code: 'WARREN_E_NOT_FOUND', message: 'agent: nothing at GET /x' });

  const answered = client.request({ ':path': '/answered' }, { endStream: false });
  answered.on('error', () => undefined);
  answered.resume();
  await once(answered, 'close');
  assert.equal(answered.rstCode, http2.constants.NGHTTP2_CANCEL);
});

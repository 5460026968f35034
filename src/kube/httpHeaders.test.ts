import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterHeaders, isUpgrade, rawValues, responseHead } from './httpHeaders.js';

test('hop-by-hop headers and those named by Connection never cross; repeated headers stay separate', () => {
  const raw = [
    'Host', 'hub', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'X-Hop', '1', 'Transfer-Encoding', 'chunked', 'TE', 'trailers',
    'Accept', 'application/json;as=Table;g=meta.k8s.io;v=v1', 'X-Stream-Protocol-Version', 'v5.channel.k8s.io', 'X-Stream-Protocol-Version', 'v4.channel.k8s.io',
    'Impersonate-User', 'admin', 'Authorization', 'Bearer secret',
  ];
  const { headers, dropped } = filterHeaders(raw, { upgrade: false, drop: (n) => n === 'authorization' || n.startsWith('impersonate-') });
  assert.deepEqual(headers, {
    host: 'hub', accept: 'application/json;as=Table;g=meta.k8s.io;v=v1', 'x-stream-protocol-version': ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
  });
  assert.deepEqual(dropped, ['Impersonate-User', 'Authorization']);
});

test('an upgrade keeps Connection: Upgrade and Upgrade', () => {
  const raw = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Protocol', 'v5.channel.k8s.io', 'Sec-WebSocket-Key', 'k'];
  assert.ok(isUpgrade({ connection: 'Upgrade', upgrade: 'websocket' }));
  assert.ok(isUpgrade({ connection: 'keep-alive, Upgrade', upgrade: 'SPDY/3.1' }));
  assert.ok(!isUpgrade({ connection: 'keep-alive', upgrade: 'websocket' }));
  assert.deepEqual(filterHeaders(raw, { upgrade: true }).headers, {
    connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-protocol': 'v5.channel.k8s.io', 'sec-websocket-key': 'k',
  });
  assert.deepEqual(filterHeaders(raw, { upgrade: false }).headers, { 'sec-websocket-protocol': 'v5.channel.k8s.io', 'sec-websocket-key': 'k' });
});

test('raw values and response heads', () => {
  assert.deepEqual(rawValues(['A', '1', 'b', '2', 'a', '3,4'], 'a'), ['1', '3,4']);
  assert.equal(
    responseHead(101, 'Switching Protocols', ['Connection', 'Upgrade', 'Upgrade', 'SPDY/3.1', 'X-Stream-Protocol-Version', 'v5'], { keepUpgrade: true }),
    'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v5\r\n\r\n',
  );
  assert.equal(
    responseHead(403, 'Forbidden', ['Content-Type', 'application/json', 'Transfer-Encoding', 'chunked', 'Connection', 'keep-alive'], { keepUpgrade: false }),
    'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nconnection: close\r\n\r\n',
  );
});

import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { dialHub } from './dialHub.js';

test('a hub URL that points at a plain-HTTP port says it is not a hub port, not a raw OpenSSL error', async (t) => {
  const server = http.createServer((_req, res) => res.end('hello'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  await assert.rejects(dialHub({ url: new URL(`https://127.0.0.1:${port}`), ca: undefined }, { timeoutMs: 5_000 }), (e: WarrenError) => {
    assert.equal(e.code, 'WARREN_E_HUB_UNREACHABLE');
    assert.match(e.message, /answered without TLS, so it is not a Warren hub port/);
    assert.doesNotMatch(e.message, /SSL routines|ssl3_get_record|openssl/i);
    return true;
  });
});

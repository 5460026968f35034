/**
 * sendError over a real HTTP server: a 5xx is logged once with its stack and cause under the request
 * id that the JSON body carries; the stack never reaches the client; a 4xx is not logged.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { WarrenError } from '../shared/errors.js';
import { z } from 'zod';
import { readJson, sendError } from './httpJson.js';

async function serve(t: TestContext, fail: () => unknown) {
  const lines: Array<{ level: number; err: { stack: string }; [field: string]: unknown }> = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString())), done()) });
  const log = pino({ level: 'info' }, sink);
  const server = http.createServer((_req, res) => sendError(res, fail(), log));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as import('node:net').AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/agents/x?secret=1`);
  return { status: res.status, text: await res.text(), lines };
}

test('an internal error answers 500 {code, message, requestId} and is logged once with stack, cause and that requestId', async (t) => {
  const cause = new Error('disk I/O error in warren.db');
  const { status, text, lines } = await serve(t, () => new TypeError('store.getAgent exploded', { cause }));
  assert.equal(status, 500);
  const body = JSON.parse(text);
  assert.equal(body.code, 'WARREN_E_INTERNAL');
  assert.equal(body.message, 'internal error');
  assert.match(body.requestId, /^[0-9a-f]{12}$/);
  assert.ok(!text.includes('exploded') && !text.includes('at '), `no internals in the body: ${text}`);
  assert.equal(lines.length, 1, 'logged once');
  const [line] = lines;
  assert.equal(line!.level, 50);
  assert.equal(line!.requestId, body.requestId);
  assert.equal(line!.path, '/api/v1/agents/x', 'the path without its query');
  assert.match(line!.err.stack, /TypeError: store\.getAgent exploded\n\s+at /);
  assert.match(line!.err.stack, /caused by: Error: disk I\/O error in warren\.db/);
});

test('a deliberate 5xx refusal is logged as a warning with its requestId; a 4xx is not logged', async (t) => {
  const unavailable = await serve(t, () => new WarrenError('WARREN_E_UNAVAILABLE', 'store is not reachable'));
  assert.equal(unavailable.status, 503);
  const body = JSON.parse(unavailable.text);
  assert.deepEqual(unavailable.lines.map((l) => [l.level, l.code, l.requestId]), [[40, 'WARREN_E_UNAVAILABLE', body.requestId]]);
  const bad = await serve(t, () => new WarrenError('WARREN_E_BAD_REQUEST', 'name: bad'));
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.text).requestId, /^[0-9a-f]{12}$/);
  assert.deepEqual(bad.lines, []);
});

test('a validation message names its field once: "ttl must be …", not "ttl: ttl must be …"', async () => {
  const schema = z.object({ ttl: z.string().refine(() => false, 'ttl must be a duration like 30m'), ports: z.number().optional() });
  const request = (body: unknown) => Object.assign(Readable.from([Buffer.from(JSON.stringify(body))]), { headers: {} }) as unknown as http.IncomingMessage;
  await assert.rejects(readJson(request({ ttl: '0' }), schema), (e: WarrenError) => e.code === 'WARREN_E_BAD_REQUEST' && e.message === 'ttl must be a duration like 30m');
  await assert.rejects(readJson(request({ ttl: '1h', ports: 'x' }), schema.extend({ ttl: z.string() })), (e: WarrenError) => /^ports: /.test(e.message));
});

/**
 * The CONNECT door over a real HTTP server: its refusals (every body carries a requestId, and an internal
 * error is logged once with its stack under that id while the client sees only "internal error"), and a
 * tunnel through the real opener of an in-process hub to an echo server behind an agent.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { WarrenError } from '../shared/errors.js';
import { readAll } from '../../test/support/connectClient.js';
import { echoServer, inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import { sha256Hex } from '../../test/support/upstreams.js';
import { handleConnect } from './connect.js';
import type { Opener, Principal } from './door.js';

const ALICE: Principal = { user: 'alice', groups: [], via: 'token' };

async function door(t: TestContext, open: Opener['open']) {
  const lines: Array<{ level: number; err: { stack: string }; [field: string]: unknown }> = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString())), done()) });
  const log = pino({ level: 'info' }, sink);
  const server = http.createServer();
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void handleConnect(req, socket, head, { opener: { open }, authenticate: async () => ALICE, log }));
  server.listen(0, '127.0.0.1');
  await withDeadline(once(server, 'listening'), 5_000, 'the CONNECT test server listening');
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  /** Sends CONNECT `target` and resolves with the status line's code and the JSON body. */
  const connect = async (target: string) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await withDeadline(once(socket, 'close'), 5_000, `the door closing the refused CONNECT ${target}`);
    const text = Buffer.concat(chunks).toString();
    return { status: Number(text.slice(9, 12)), text, body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown> };
  };
  return { connect, lines, port };
}

test('an internal error opening the stream answers 500 with a requestId and is logged once with its stack under it', async (t) => {
  const { connect, lines } = await door(t, async () => {
    throw new RangeError('tunnel table corrupt');
  });
  const { status, text, body } = await connect('node1:22');
  assert.equal(status, 500);
  assert.equal(body.code, 'WARREN_E_INTERNAL');
  assert.equal(body.message, 'internal error');
  assert.match(String(body.requestId), /^[0-9a-f]{12}$/);
  assert.ok(!text.includes('corrupt'), 'the error message stays in the log');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.level, 50);
  assert.equal(lines[0]!.requestId, body.requestId);
  assert.equal(lines[0]!.target, 'node1:22');
  assert.match(lines[0]!.err.stack, /RangeError: tunnel table corrupt\n\s+at /);
});

test('a refusal below 500 carries a requestId and is not logged', async (t) => {
  const { connect, lines } = await door(t, async () => {
    throw new WarrenError('WARREN_E_FORBIDDEN', 'user "alice" has no grant for node1:22');
  });
  const { status, body } = await connect('node1:22');
  assert.equal(status, 403);
  assert.equal(body.code, 'WARREN_E_FORBIDDEN');
  assert.match(String(body.requestId), /^[0-9a-f]{12}$/);
  assert.deepEqual(lines, []);
});

test('through the real opener: 200, bytes both ways with half-close kept, and the grant decides the port', async (t) => {
  const lab = await inProcessHub();
  const echoPort = await echoServer();
  await lab.agent('site1');
  await lab.grant({ subjectKind: 'user', subject: 'alice', agent: 'site1', ports: String(echoPort) });
  const { connect, port } = await door(t, (req) => lab.hub.opener.open(req));

  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.write(`CONNECT site1:${echoPort} HTTP/1.1\r\nHost: site1:${echoPort}\r\n\r\n`);
  // The echo answers only what it is sent, so the first bytes are the door's answer alone.
  const [head] = (await withDeadline(once(socket, 'data'), 5_000, "the door's answer to CONNECT")) as [Buffer];
  assert.match(head.toString(), /^HTTP\/1\.1 200 /);
  const back = readAll(socket);
  socket.end('through the tunnel');
  const r = await withDeadline(back, 5_000, 'the echo coming back and its EOF');
  assert.ok(r.clean, `the stream ended cleanly (${r.error?.message})`);
  assert.equal(r.sha256, sha256Hex('through the tunnel'));

  const refused = await connect('site1:1');
  assert.equal(refused.status, 403);
  assert.equal(refused.body.code, 'WARREN_E_FORBIDDEN');
});

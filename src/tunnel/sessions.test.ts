/**
 * Adopting a dialled TLS socket into an HTTP/2 server (the agent's side of the reversed tunnel) and the
 * graceful drain, over real TLS on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { createCa, issueServerCert, loadCa } from '../pki/pki.js';
import { withDeadline } from '../../test/support/proc.js';
import { adoptSocket, closeWithSocket, drainSessions } from './sessions.js';

const caPair = await createCa('sessions test CA');
const serving = await issueServerCert(await loadCa(caPair), ['127.0.0.1']);

/** A TLS connection with `alpn` offered by both ends; returns the accepted and the dialled end. */
async function tlsPair(t: TestContext, alpn: string[] | undefined, dial: { allowHalfOpen?: boolean } = {}) {
  const server = tls.createServer({ key: serving.keyPem, cert: serving.certPem, ...(alpn ? { ALPNProtocols: alpn } : {}) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const dialled = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ca: [caPair.certPem], ...(alpn ? { ALPNProtocols: alpn } : {}), ...dial });
  await once(dialled, 'secureConnect');
  const [socket] = await accepted;
  t.after(() => (dialled.destroy(), socket.destroy(), server.close()));
  return { accepted: socket, dialled };
}

/** The hub's role: an HTTP/2 client over the accepted socket. */
function clientOver(socket: tls.TLSSocket): http2.ClientHttp2Session {
  const session = http2.connect('https://agent.warren', { createConnection: () => socket });
  session.on('error', () => undefined);
  return session;
}

test('a dialled socket with a custom ALPN is adopted and served by the HTTP/2 server', async (t) => {
  const { accepted, dialled } = await tlsPair(t, ['warren/1']);
  assert.equal(dialled.alpnProtocol, 'warren/1');
  const server = http2.createServer();
  server.on('stream', (stream) => (stream.respond({ ':status': 200 }), stream.end('served')));
  const session = adoptSocket(server, dialled);
  assert.ok(session, 'the server made no session for the socket');
  const client = clientOver(accepted);
  t.after(() => client.destroy());
  const req = client.request({ ':path': '/warren/v1/info' });
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  req.setEncoding('utf8');
  let body = '';
  for await (const chunk of req) body += chunk as string;
  assert.equal(headers[':status'], 200);
  assert.equal(body, 'served');
});

test('a TLS socket that negotiated no protocol is not adopted (Node takes it for HTTP/1.1)', async (t) => {
  const { dialled } = await tlsPair(t, undefined);
  assert.equal(dialled.alpnProtocol, false);
  const server = http2.createServer();
  server.on('unknownProtocol', (socket: tls.TLSSocket) => socket.destroy());
  assert.equal(adoptSocket(server, dialled), undefined);
});

test('drain lets a stream in flight finish, and aborts a session still busy after the grace period', async (t) => {
  const server = http2.createServer();
  const streams = new Map<string, http2.ServerHttp2Stream>();
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    streams.set(String(headers[':authority']), stream);
  });
  const polite = await tlsPair(t, ['warren/1']);
  const stuck = await tlsPair(t, ['warren/1']);
  const politeClient = clientOver(polite.accepted);
  const stuckClient = clientOver(stuck.accepted);
  const politeSession = adoptSocket(server, polite.dialled)!;
  const stuckSession = adoptSocket(server, stuck.dialled)!;
  const politeReq = politeClient.request({ ':method': 'CONNECT', ':authority': 'a:1' }, { endStream: false });
  const stuckReq = stuckClient.request({ ':method': 'CONNECT', ':authority': 'b:1' }, { endStream: false });
  for (const r of [politeReq, stuckReq]) r.on('error', () => undefined);
  await Promise.all([once(politeReq, 'response'), once(stuckReq, 'response')]);

  const graceMs = 300;
  const started = Date.now();
  const drained = drainSessions([politeSession, stuckSession], graceMs);
  // The polite peer sees the GOAWAY and finishes its stream; the stuck one never does.
  await once(politeClient, 'goaway');
  politeReq.end();
  streams.get('a:1')!.end('bye');
  politeReq.resume();
  await once(politeReq, 'close');
  await drained;
  assert.ok(Date.now() - started >= graceMs - 20, 'drain returned before the grace period although a stream was still open');
  assert.equal(politeReq.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the finished stream was cut');
  if (!stuckReq.closed) await once(stuckReq, 'close');
  assert.equal(stuckReq.rstCode, http2.constants.NGHTTP2_CANCEL, 'the stream left after the grace period did not end as aborted');
  assert.ok(politeSession.destroyed && stuckSession.destroyed);
});

test('a session tied to its half-open capable socket aborts its streams when the peer is gone (its FIN)', async (t) => {
  // The agent's uplink: an HTTP/2 client over dialHub's socket, which allows half-open.
  const { accepted, dialled } = await tlsPair(t, ['warren-up/1'], { allowHalfOpen: true });
  const server = http2.createServer();
  server.on('stream', (stream) => stream.respond({ ':status': 200 }));
  assert.ok(adoptSocket(server, accepted));
  const client = clientOver(dialled);
  t.after(() => client.destroy());
  closeWithSocket(client, dialled);
  const req = client.request({ ':method': 'CONNECT', ':authority': 'a:1' }, { endStream: false });
  req.on('error', () => undefined);
  await once(req, 'response');
  // The hub is gone, and its FIN is all that arrives (the kernel's, when the process exits).
  accepted.end();
  await withDeadline(once(req, 'close'), 5_000, 'the stream closing once its peer was gone');
  // 'aborted' is what the relay turns into a reset toward the client, instead of a FIN.
  assert.ok(req.aborted, 'the stream did not end as aborted');
  assert.ok(client.destroyed);
  // And the socket goes too: a destroyed session stops reading it, and a socket neither read nor written
  // keeps nothing alive, so a process waiting on it would exit with nothing said (Node's exit code 13).
  if (!dialled.closed) await withDeadline(once(dialled, 'close'), 5_000, 'the socket closing once its peer was gone');
});

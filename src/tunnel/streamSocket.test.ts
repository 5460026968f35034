import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { withDeadline } from '../../test/support/proc.js';
import { streamSocket, type StreamSocket } from './streamSocket.js';

test('a pooled stream socket keeps one request-timeout listener however often it is reused', async (t) => {
  // The agent's side: an HTTP/1.1 server on each tunnel stream. The hub's side: a keep-alive http.Agent
  // whose connections are tunnel streams, with a timeout (as the kube pool has).
  const answer = http.createServer((_req, res) => res.end('ok'));
  const tunnel = http2.createServer();
  tunnel.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    answer.emit('connection', streamSocket(stream));
  });
  tunnel.listen(0, '127.0.0.1');
  await once(tunnel, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(tunnel.address() as { port: number }).port}`);
  const opened: StreamSocket[] = [];
  class Pool extends http.Agent {
    override createConnection(_o: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): undefined {
      const s = streamSocket(session.request({ ':method': 'POST', ':path': '/' }, { endStream: false }));
      opened.push(s);
      cb?.(null, s);
      return undefined;
    }
  }
  const pool = new Pool({ keepAlive: true, maxSockets: 1, timeout: 60_000 });
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => {
    process.off('warning', onWarning);
    pool.destroy();
    session.destroy();
    tunnel.close();
  });

  for (let i = 0; i < 25; i++) {
    const req = http.request({ host: 'kube', path: `/r/${i}`, agent: pool, timeout: 30_000 });
    req.end();
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    let body = '';
    for await (const c of res) body += String(c);
    assert.equal(body, 'ok');
  }
  // Let the last response's end hand the socket back to the pool (its listeners are cleaned up then).
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(opened.length, 1, 'the 25 requests did not reuse one pooled stream');
  // The pool's own idle-timeout listener stays; the requests' listeners come and go.
  assert.ok(opened[0]!.listenerCount('timeout') <= 2, `${opened[0]!.listenerCount('timeout')} timeout listeners after 25 requests`);
  assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
});

test('a stream reset before it was wrapped gives a socket that fails: a request over it errors instead of hanging', async (t) => {
  // The agent's side answers 200 and resets the stream in the same turn, as an agent that stops does;
  // both frames arrive in one read, so the stream has closed by the time the opener's caller wraps it.
  const tunnel = http2.createServer();
  tunnel.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.close(http2.constants.NGHTTP2_CANCEL);
  });
  tunnel.listen(0, '127.0.0.1');
  await once(tunnel, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(tunnel.address() as { port: number }).port}`);
  t.after(() => (session.destroy(), tunnel.close()));
  const stream = session.request({ ':method': 'CONNECT', ':authority': 'kube' }, { endStream: false });
  stream.on('error', () => undefined);
  await once(stream, 'close');

  const req = http.request({ host: 'kube', path: '/api', createConnection: () => streamSocket(stream) });
  req.end();
  const outcome = await withDeadline(Promise.race([
    once(req, 'error').then(([err]) => `error: ${(err as Error).message}`),
    once(req, 'response').then(() => 'response'),
  ]), 5_000, 'an answer or an error on the request');
  assert.match(outcome, /^error: tunnel stream reset \(code 8\)$/);
});

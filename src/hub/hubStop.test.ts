// A stopping hub (hub.close(), what SIGTERM runs): what clients sent before its listeners closed is
// answered, and whatever is still open when close() resolves — the process exits right after — has
// ended with an error its client sees (a refusal or a reset), never with a clean end.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { test } from 'node:test';
import { ConnectRefused, connectThroughHub, readAll } from '../../test/support/connectClient.js';
import { echoServer, inProcessHub } from '../../test/support/inProcess.js';
import { eventually, withDeadline } from '../../test/support/proc.js';

/** Resolves once nothing listens on `port` any more (a connection is refused). */
function listenerClosed(port: number): Promise<void> {
  return eventually('the hub port refusing connections', 5_000, () => new Promise<true | undefined>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(undefined)));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? true : undefined));
  }), 10).then(() => undefined);
}

/** Everything `socket` delivers until it ends, as text; rejects on an error. */
function text(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let all = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (all += c));
    socket.once('end', () => resolve(all));
    socket.once('error', (err) => reject(new Error(`${err.message} after ${JSON.stringify(all)}`)));
  });
}

test('a request on a connection that finished its handshake before the stop is answered, with Connection: close', async () => {
  const lab = await inProcessHub({ drainTimeout: '5s' });
  const url = new URL(lab.hub.url);
  const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: fs.readFileSync(lab.hub.caPath), ALPNProtocols: ['http/1.1'] });
  await withDeadline(new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)), 5_000, 'the TLS handshake');
  const stopped = lab.hub.close();
  await listenerClosed(Number(url.port));
  const answer = text(socket);
  socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n');
  const got = await withDeadline(answer, 5_000, 'the answer to a request sent during the stop');
  assert.ok(got.startsWith('HTTP/1.1 200 '), got);
  assert.match(got, /^connection: close\r$/im);
  await withDeadline(stopped, 10_000, 'the hub stopping');
});

test('a forward and a CONNECT waiting for a reconnecting agent are refused with an error before close() resolves', async () => {
  const lab = await inProcessHub({ drainTimeout: '300ms' });
  const echoPort = await echoServer();
  const agent = await lab.agent('gone');
  const created = await lab.request('POST', '/api/v1/forwards', { token: lab.adminToken, body: { name: 'to-gone', entry: 'hub:127.0.0.1:0', target: `gone:${echoPort}` } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const fwdPort = Number(String(created.body.address).split(':').pop());
  // The agent goes away: the hub takes it to be reconnecting and makes new streams wait for it (5 s).
  const lost = new Promise<void>((resolve) => lab.hub.tunnels.once('disconnected', () => resolve()));
  await agent.stop();
  await withDeadline(lost, 5_000, 'the hub noticing the agent is gone');

  const forwardClient = net.connect({ host: '127.0.0.1', port: fwdPort });
  const forwardEnd = readAll(forwardClient);
  await withDeadline(new Promise((resolve) => forwardClient.once('connect', resolve)), 5_000, 'the forward connection');
  const connect = connectThroughHub({ url: lab.hub.url, caPath: lab.hub.caPath, adminToken: lab.adminToken }, `gone:${echoPort}`, { timeoutMs: 20_000 }).then(
    () => assert.fail('the CONNECT was answered 200'),
    (err: unknown) => err,
  );
  // Both are waiting in the opener: each counts as a use being opened.
  await eventually('two streams waiting for the agent', 5_000, async () => (lab.hub.opener.openingCount === 2 ? true : undefined), 10);

  // Within 3 s of the stop: the agent wait (5 s) did not run out, the stop ended it.
  const stopped = lab.hub.close();
  const fwd = await withDeadline(forwardEnd, 3_000, 'the forward client to be cut');
  assert.equal(fwd.clean, false, 'the forward client got a clean EOF: a stream cut before its first byte looks complete');
  assert.equal((fwd.error as NodeJS.ErrnoException).code, 'ECONNRESET');
  const refused = await withDeadline(connect, 3_000, 'the CONNECT to be refused');
  assert.ok(refused instanceof ConnectRefused, String(refused));
  assert.equal(refused.status, 503);
  assert.equal(JSON.parse(refused.body).code, 'WARREN_E_UNAVAILABLE');
  assert.match(JSON.parse(refused.body).message, /the hub is stopping/);
  await withDeadline(stopped, 10_000, 'the hub stopping');
});

test('with a shutdown delay the hub goes on serving, /readyz answering 503 "stopping", before its listener closes', async () => {
  const lab = await inProcessHub();
  const port = Number(new URL(lab.hub.url).port);
  assert.deepEqual(await lab.request('GET', '/readyz').then((r) => [r.status, r.body]), [200, { status: 'ready' }]);
  let closed = false;
  const stopped = lab.hub.close({ delayMs: 60_000 }).finally(() => (closed = true));
  // New connections during the delay: served, and told the hub is not ready.
  assert.deepEqual(await lab.request('GET', '/readyz').then((r) => [r.status, r.body]), [503, { status: 'stopping' }]);
  assert.equal((await lab.request('GET', '/healthz')).status, 200);
  assert.equal(closed, false);
  // A close() without a delay (Ctrl-C after the SIGTERM) ends the delay: the hub stops now.
  await withDeadline(lab.hub.close(), 10_000, 'the hub stopping once its delay was cut short');
  await stopped;
  await listenerClosed(port);
});

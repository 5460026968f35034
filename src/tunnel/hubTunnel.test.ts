/**
 * Both ends of one tunnel in process: the agent serves HTTP/2 on the TLS socket it dialled
 * (agentSession.ts), the hub runs the client over the accepted socket (hubTunnel.ts). What one end
 * encodes the other must decode: stream refusals, listener sets and reports, the GOAWAY reason.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { silentLogger } from '../shared/log.js';
import { createCa, issueServerCert, loadCa } from '../pki/pki.js';
import { serveAgentSession } from './agentSession.js';
import { AgentTunnel, fetchInfo, openTunnelSession, refuseTunnel } from './hubTunnel.js';
import { encodeListenerReport } from './listenerSet.js';
import { ALPN, INFO_PATH, type AgentInfo, type Refusal } from './protocol.js';
import { refuseStream } from './refusalHeaders.js';

const caPair = await createCa('tunnel test CA');
const serving = await issueServerCert(await loadCa(caPair), ['127.0.0.1']);
const info: AgentInfo = { name: 'a1', version: 'test', hostname: 'h', labels: {}, routes: ['10.0.0.0/8'], clusters: [], allow: ['*'] };

/** A tunnel whose agent end answers each stream with `answer`; resolves once the hub has the agent's info. */
async function tunnel(t: TestContext, answer: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void) {
  const server = tls.createServer({ key: serving.keyPem, cert: serving.certPem, ALPNProtocols: [ALPN], allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const dialled = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ca: [caPair.certPem], ALPNProtocols: [ALPN] });
  await once(dialled, 'secureConnect');
  const [socket] = await accepted;

  const agentH2 = http2.createServer();
  agentH2.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':path'] === INFO_PATH) return void (stream.respond({ ':status': 200 }), stream.end(JSON.stringify(info)));
    answer(stream, headers);
  });
  let closed!: (r: Refusal | undefined) => void;
  const agentClosed = new Promise<Refusal | undefined>((resolve) => (closed = resolve));
  const agent = serveAgentSession(agentH2, dialled, { pingIntervalMs: 5_000, log: silentLogger, onTaken: () => undefined, onClosed: closed });
  const session = openTunnelSession(socket, silentLogger);
  t.after(() => (agent.drop(), session.destroy(), server.close()));
  const hubInfo = await fetchInfo(session);
  return { hub: new AgentTunnel(hubInfo.name, hubInfo, session, '127.0.0.1:1'), agentClosed, hubInfo };
}

test('the hub reads the agent info the agent serves', async (t) => {
  const { hubInfo } = await tunnel(t, () => undefined);
  assert.deepEqual(hubInfo, info);
});

test("an agent's refusal of a CONNECT reaches the hub as the same error code and message", async (t) => {
  const { hub } = await tunnel(t, (stream) => refuseStream(stream, new WarrenError('WARREN_E_AGENT_REFUSED', 'agent refuses db:5432: not in its allow-list (--allow)')));
  await assert.rejects(hub.open('db:5432', { timeoutMs: 5_000 }), (err: unknown) =>
    err instanceof WarrenError && err.code === 'WARREN_E_AGENT_REFUSED' && err.message === 'agent refuses db:5432: not in its allow-list (--allow)' && err.details?.agent === 'a1');
});

test('a listener set goes to the agent as JSON and its report comes back decoded', async (t) => {
  let received = '';
  const { hub } = await tunnel(t, (stream) => {
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (received += c));
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(encodeListenerReport({ listeners: [{ forward: 'pg', listening: true, address: '0.0.0.0:5432' }] }));
    });
  });
  const report = await hub.pushListeners({ listeners: [{ forward: 'pg', host: '0.0.0.0', port: 0 }] }, 5_000);
  assert.equal(received, '{"listeners":[{"forward":"pg","host":"0.0.0.0","port":0}]}');
  assert.deepEqual(report, { listeners: [{ forward: 'pg', listening: true, address: '0.0.0.0:5432' }] });
});

test('a listener push fails cleanly on a malformed report, a refusal, and an agent without forwards', async (t) => {
  const answers: Record<string, (s: http2.ServerHttp2Stream) => void> = {
    malformed: (s) => (s.respond({ ':status': 200 }), s.end('{"listeners":"no"}')),
    refused: (s) => refuseStream(s, new WarrenError('WARREN_E_BAD_REQUEST', 'agent: malformed listener set')),
    old: (s) => s.respond({ ':status': 404 }, { endStream: true }),
  };
  const expected: Record<string, [string, RegExp]> = {
    malformed: ['WARREN_E_BAD_REQUEST', /malformed listener report/],
    refused: ['WARREN_E_BAD_REQUEST', /agent: malformed listener set/],
    old: ['WARREN_E_AGENT_REFUSED', /does not support forward entries/],
  };
  for (const [name, answer] of Object.entries(answers)) {
    const { hub } = await tunnel(t, (stream) => (stream.resume(), stream.on('end', () => answer(stream))));
    const [code, message] = expected[name]!;
    await assert.rejects(hub.pushListeners({ listeners: [] }, 5_000), (err: unknown) => err instanceof WarrenError && err.code === code && message.test(err.message), name);
  }
});

test('a refused agent learns why from the GOAWAY, and a plain close carries no reason', async (t) => {
  const refused = await tunnel(t, () => undefined);
  const why = { code: 'WARREN_E_AGENT_REVOKED', message: 'agent "a1" was removed from the hub; join again with a new token' };
  refuseTunnel(refused.hub.session, why);
  assert.deepEqual(await refused.agentClosed, why);

  const drained = await tunnel(t, () => undefined);
  drained.hub.session.close();
  assert.equal(await drained.agentClosed, undefined);
});

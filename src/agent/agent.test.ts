/**
 * The agent's reconnect loop against stand-in hubs on 127.0.0.1 that complete the TLS handshake (ALPN
 * warren/1, the agent's real certificate) and then misbehave: every attempt must end and be followed by
 * another.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import http2 from 'node:http2';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { silentLogger } from '../shared/log.js';
import { createCa, createCsr, fingerprint, issueAgentCert, issueServerCert, loadCa } from '../pki/pki.js';
import { ALPN, INFO_PATH } from '../tunnel/protocol.js';
import { startAgent } from './agent.js';
import { agentConfig } from './config.js';
import { withDeadline } from '../../test/support/proc.js';

const caPair = await createCa('agent test CA');
const ca = await loadCa(caPair);
const serving = await issueServerCert(ca, ['127.0.0.1']);

/** A stand-in hub that hands each agent connection to `behave`; resolves `connections(n)` once n arrived. */
async function standInHub(t: TestContext, behave: (socket: tls.TLSSocket) => void) {
  let count = 0;
  const waiters: Array<[number, () => void]> = [];
  const sockets: tls.TLSSocket[] = [];
  const server = tls.createServer(
    { key: serving.keyPem, cert: serving.certPem + caPair.certPem, ca: [caPair.certPem], requestCert: true, rejectUnauthorized: true, ALPNProtocols: [ALPN], allowHalfOpen: true },
    (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      count++;
      for (const [n, resolve] of waiters) if (count >= n) resolve();
      behave(socket);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    count: () => count,
    connections: (n: number) => new Promise<void>((resolve) => (count >= n ? resolve() : waiters.push([n, resolve]))),
  };
}

async function agentOf(t: TestContext, hubUrl: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-agent-test-'));
  const { csrPem, keyPem } = await createCsr('a1');
  const cert = await issueAgentCert(ca, csrPem, 'a1', 1);
  fs.writeFileSync(path.join(dataDir, 'identity.json'), JSON.stringify({ name: 'a1', hubUrl, caPin: fingerprint(caPair.certPem) }));
  fs.writeFileSync(path.join(dataDir, 'agent.key'), keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dataDir, 'agent.crt'), cert.certPem);
  fs.writeFileSync(path.join(dataDir, 'ca.crt'), caPair.certPem);
  const agent = await startAgent(agentConfig({ name: 'a1', dataDir, pingInterval: '500ms', reconnectMax: '100ms' }, {}), silentLogger);
  t.after(async () => {
    await agent.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return agent;
}

/** The hub's side of HTTP/2 on an agent connection, as the real hub runs it. */
function h2Client(socket: tls.TLSSocket) {
  const session = http2.connect(`https://agent.${ALPN}`, { createConnection: () => socket });
  session.on('error', () => undefined);
  return session;
}

test('a hub that closes the connection right after the TLS handshake is dialled again', { timeout: 20_000 }, async (t) => {
  const hub = await standInHub(t, (socket) => socket.end());
  await agentOf(t, hub.url);
  await hub.connections(3);
});

test('a hub that sends GOAWAY and then keeps the connection open is dialled again', { timeout: 20_000 }, async (t) => {
  // The agent's session closes; before, it then waited for the hub's FIN, which never came.
  const hub = await standInHub(t, (socket) => {
    const session = h2Client(socket);
    session.once('connect', () => session.goaway(http2.constants.NGHTTP2_NO_ERROR));
  });
  await agentOf(t, hub.url);
  await hub.connections(3);
});

test('a hub that speaks HTTP/2 but never takes the tunnel is dialled again', { timeout: 20_000 }, async (t) => {
  // It answers the agent's pings but never sends the info request; before, the agent waited forever.
  const hub = await standInHub(t, (socket) => void h2Client(socket));
  await agentOf(t, hub.url);
  await hub.connections(3);
});

test('a hub that takes the tunnel keeps it', { timeout: 20_000 }, async (t) => {
  let pings = 0;
  let fourPings!: () => void;
  const pinged = new Promise<void>((resolve) => (fourPings = resolve));
  const hub = await standInHub(t, (socket) => {
    const session = h2Client(socket);
    session.on('ping', () => ++pings === 4 && fourPings());
    session.request({ ':method': 'GET', ':path': INFO_PATH }).on('error', () => undefined).resume();
  });
  const agent = await agentOf(t, hub.url);
  await withDeadline(once(agent, 'connected'), 10_000, 'the agent taking its tunnel up');
  // Four pings from the agent: past its admission deadline and its keepalive deadline, same connection.
  await withDeadline(pinged, 10_000, 'four pings from the agent on one connection');
  await hub.connections(1);
  assert.ok(agent.connected);
  assert.equal(hub.count(), 1);
});

test('a join token cut short when copied is refused as malformed, not an internal "Invalid URL"', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-agent-truncated-'));
  try {
    for (const token of ['wj1.aHR0cHM6Ly9odWIuZXhhbXBsZS5jb206ODQ0Mw', 'wj1.abc', 'wj1']) {
      await assert.rejects(startAgent(agentConfig({ token, name: 'node1', dataDir }, {}), silentLogger), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'WARREN_E_JOIN_TOKEN_INVALID', e.message);
        assert.match(e.message, /malformed .*cut short when copied\?.*warren join-token create/);
        return true;
      });
    }
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

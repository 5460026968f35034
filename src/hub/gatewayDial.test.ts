/**
 * Gateway agents in process (design §6): an agent started with --source-ip dials from that address when
 * the opener names it, refuses an address it was not started with, and is refused by the hub when its
 * join token does not name the address; an address the host does not own stops it at start.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { silentLogger } from '../shared/log.js';
import { agentConfig } from '../agent/config.js';
import { startAgent } from '../agent/agent.js';
import { forwardPrincipal } from './forwards.js';
import { inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import { tempDir } from '../../test/support/warren.js';

const lab = await inProcessHub();

/** A TCP server that answers each connection with the client address it saw, then closes. */
async function whoAmIServer(t: { after(fn: () => void): void }) {
  const server = net.createServer((s) => s.end(`${s.remoteAddress}\n`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

test('a gateway dials from the source address the opener names, and reports its addresses', async (t) => {
  const target = await whoAmIServer(t);
  await lab.agent('gw1', { sourceIp: '127.0.0.1', allow: '127.0.0.1' });
  const opened = await lab.hub.opener.open({
    target, principal: forwardPrincipal('eg', target), door: 'forward', source: 'test', gateway: { agent: 'gw1', sourceIp: '127.0.0.1' },
  });
  assert.equal(opened.agent, 'gw1');
  const got = readAll(opened.stream);
  opened.stream.end();
  assert.equal(await withDeadline(got, 5_000, 'the answer through the gateway'), '127.0.0.1\n');
  const view = await lab.request('GET', '/api/v1/agents/gw1', { token: lab.adminToken });
  assert.deepEqual(view.body.sourceIps, ['127.0.0.1']);
  assert.deepEqual(view.body.authority.sourceIps, ['127.0.0.1']);
});

test('a gateway refuses an address it was not started with; only a scoped principal may name a gateway', async (t) => {
  const target = await whoAmIServer(t);
  await lab.agent('gw2', { sourceIp: '127.0.0.1', allow: '127.0.0.1' });
  await assert.rejects(
    lab.hub.opener.open({ target, principal: forwardPrincipal('eg', target), door: 'forward', source: 'test', gateway: { agent: 'gw2', sourceIp: '127.0.0.2' } }),
    (err: WarrenError) => err.code === 'WARREN_E_AGENT_REFUSED' && /not one of its --source-ip addresses \(127\.0\.0\.1\)/.test(err.message),
  );
  await assert.rejects(
    lab.hub.opener.open({ target, principal: { user: 'ana', groups: ['warren:admins'], via: 'token' }, door: 'connect', source: 'test', gateway: { agent: 'gw2', sourceIp: '127.0.0.1' } }),
    (err: WarrenError) => err.code === 'WARREN_E_FORBIDDEN',
  );
  await assert.rejects(
    lab.hub.opener.open({ target, principal: forwardPrincipal('eg', target), door: 'forward', source: 'test', gateway: { agent: 'nope', sourceIp: '127.0.0.1' } }),
    (err: WarrenError) => err.code === 'WARREN_E_AGENT_OFFLINE',
  );
});

test('the hub refuses a source address the join token does not name, and the agent stops for good', async (t) => {
  const { token } = await lab.hub.enrollment.createJoinToken({ ttlMs: 60_000, uses: 1, labels: {}, authority: { name: 'gw3', clusters: [], routes: [] }, createdBy: 'test' });
  const dataDir = tempDir('agent-gw3');
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const agent = await startAgent(agentConfig({ name: 'gw3', dataDir, token, sourceIp: '127.0.0.1', pingInterval: '1s' }, {}), silentLogger);
  t.after(() => agent.stop());
  await assert.rejects(withDeadline(agent.done, 10_000, 'the refused gateway stopping'), (err: WarrenError) =>
    err.code === 'WARREN_E_AGENT_CLAIM_DENIED' && err.message.includes('may not use source address 127.0.0.1') && err.message.includes('--source-ips 127.0.0.1'));
});

test('an agent refuses to start with a source address its host does not own', async () => {
  await assert.rejects(
    startAgent(agentConfig({ name: 'gw4', dataDir: tempDir('agent-gw4'), token: 'x', sourceIp: '10.255.254.253' }, {}), silentLogger),
    (err: WarrenError) => err.code === 'WARREN_E_CONFIG' && err.message.startsWith('--source-ip 10.255.254.253: not an address of this host'),
  );
});

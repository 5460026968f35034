/**
 * Egress and ingress rules in process (design §6), through the admin API of a real hub with real
 * agents: an egress rule's gateway dials from its source address; an ingress rule listens on the
 * gateway's address and reaches a target behind another agent; bad input (unknown gateway, an address
 * the gateway does not own, a port in use) is refused with nothing created; delete closes at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { freePort, inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';

const lab = await inProcessHub();
await lab.agent('gw', { sourceIp: '127.0.0.1', allow: '127.0.0.1' });
await lab.agent('cl');
const admin = (method: string, path: string, body?: unknown) => lab.request(method, path, { token: lab.adminToken, body });

/** A TCP server that answers each connection with the client address it saw, then closes. */
async function whoAmIServer(t: { after(fn: () => void): void }): Promise<number> {
  const server = net.createServer((s) => s.end(`${s.remoteAddress}\n`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** Connects and reads until the far side closes; `reset` when the connection failed or was cut. */
function fetchLine(address: string): Promise<{ text: string; reset: boolean }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return withDeadline(new Promise((resolve) => {
    const s = net.connect({ host, port });
    let text = '';
    let reset = false;
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('error', () => (reset = true));
    s.on('close', () => resolve({ text, reset }));
  }), 5_000, `an answer from ${address}`);
}

test('an egress rule carries connections to its target from the gateway source address, with live counters', async (t) => {
  const port = await whoAmIServer(t);
  const created = await admin('POST', '/api/v1/egress', { name: 'eg1', gateway: 'gw', target: `127.0.0.1:${port}`, sourceIp: '127.0.0.1', entry: 'hub:127.0.0.1:0' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.kind, 'egress');
  assert.equal(created.body.listening, true);
  assert.deepEqual((await fetchLine(created.body.address)).text, '127.0.0.1\n');
  const shown = await admin('GET', '/api/v1/egress/eg1');
  assert.equal(shown.body.connections, 1);
  assert.equal(shown.body.bytesOut, '127.0.0.1\n'.length);
  assert.deepEqual((await admin('GET', '/api/v1/egress')).body.map((r: { name: string }) => r.name), ['eg1']);
  assert.ok((await admin('GET', '/api/v1/forwards')).body.some((r: { name: string; kind: string }) => r.name === 'eg1' && r.kind === 'egress'), 'an egress rule is a forward');
  assert.equal((await admin('GET', '/api/v1/ingress/eg1')).status, 404, 'not an ingress rule');

  assert.equal((await admin('DELETE', '/api/v1/egress/eg1')).status, 200);
  assert.equal((await fetchLine(created.body.address)).reset, true, 'the entry is closed once the delete has answered');
  assert.equal((await admin('GET', '/api/v1/egress/eg1')).status, 404);
});

test('egress: unknown gateway, an address it does not own and a port in use are refused, nothing created', async (t) => {
  const port = await whoAmIServer(t);
  const base = { name: 'eg2', gateway: 'gw', target: `127.0.0.1:${port}`, sourceIp: '127.0.0.1', entry: 'hub:127.0.0.1:0' };
  const unknown = await admin('POST', '/api/v1/egress', { ...base, gateway: 'nosuch' });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'WARREN_E_NOT_FOUND');
  assert.match(unknown.body.message, /^gateway: no agent "nosuch"/);
  const notOwned = await admin('POST', '/api/v1/egress', { ...base, sourceIp: '127.0.0.2' });
  assert.equal(notOwned.status, 400);
  assert.equal(notOwned.body.message, 'sourceIp: gateway "gw" does not own 127.0.0.2 (its --source-ip addresses: 127.0.0.1); add the address to its host and start it with --source-ip 127.0.0.1,127.0.0.2');
  const notGateway = await admin('POST', '/api/v1/egress', { ...base, gateway: 'cl' });
  assert.equal(notGateway.status, 400);
  assert.match(notGateway.body.message, /gateway "cl" does not own 127\.0\.0\.1 \(its --source-ip addresses: none\)/);
  const busy = net.createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  t.after(() => busy.close());
  const inUse = await admin('POST', '/api/v1/egress', { ...base, entry: `hub:127.0.0.1:${(busy.address() as net.AddressInfo).port}` });
  assert.equal(inUse.status, 409);
  assert.equal(inUse.body.code, 'WARREN_E_LISTEN_FAILED');
  assert.match(inUse.body.message, /^egress rule "eg2" not created: cannot listen on 127\.0\.0\.1:\d+: the address is in use$/);
  assert.deepEqual((await admin('GET', '/api/v1/forwards')).body.filter((r: { name: string }) => r.name === 'eg2'), []);
  assert.equal((await lab.hub.store.listForwards()).some((r) => r.name === 'eg2'), false, 'nothing stored');
});

test('an ingress rule listens on the gateway address and reaches a target behind another agent', async (t) => {
  const port = await whoAmIServer(t);
  const listenPort = await freePort();
  const created = await admin('POST', '/api/v1/ingress', { name: 'in1', gateway: 'gw', listen: `127.0.0.1:${listenPort}`, target: `cl:${port}` });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.address, `127.0.0.1:${listenPort}`);
  assert.equal(created.body.agent, 'gw');
  assert.equal((await fetchLine(`127.0.0.1:${listenPort}`)).text, '127.0.0.1\n');
  const clash = await admin('POST', '/api/v1/ingress', { name: 'in2', gateway: 'gw', listen: `127.0.0.1:${listenPort}`, target: `cl:${port}` });
  assert.equal(clash.status, 409);
  assert.match(clash.body.message, /overlaps ingress "in1"/);
  const wrongIp = await admin('POST', '/api/v1/ingress', { name: 'in3', gateway: 'gw', listen: `127.0.0.2:${listenPort}`, target: `cl:${port}` });
  assert.equal(wrongIp.status, 400);
  assert.equal((await admin('DELETE', '/api/v1/egress/in1')).status, 404, 'egress rm does not delete an ingress rule');
  assert.equal((await admin('DELETE', '/api/v1/ingress/in1')).status, 200);
  assert.equal((await fetchLine(`127.0.0.1:${listenPort}`)).reset, true, 'the gateway closed the listener before the delete answered');
});

test('ingress: a port in use on the gateway is refused, nothing created', async (t) => {
  const busy = net.createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  t.after(() => busy.close());
  const r = await admin('POST', '/api/v1/ingress', { name: 'in4', gateway: 'gw', listen: `127.0.0.1:${(busy.address() as net.AddressInfo).port}`, target: 'cl:80' });
  assert.equal(r.status, 409);
  assert.match(r.body.message, /^ingress rule "in4" not created: cannot listen on 127\.0\.0\.1:\d+: the address is in use$/);
  assert.equal((await lab.hub.store.listForwards()).some((x) => x.name === 'in4'), false);
});

/**
 * The admin API in process, over HTTPS against a real hub: who may call what, the JSON error shape, and
 * a few routes that change what the hub does (tokens, grants, agents).
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { test } from 'node:test';
import { inProcessHub } from '../../test/support/inProcess.js';

const lab = await inProcessHub();
await lab.agent('api-a1');

/** The error body every 4xx carries. */
function assertError(r: Awaited<ReturnType<typeof lab.request>>, status: number, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.code, code);
  assert.equal(typeof r.body.message, 'string');
  assert.match(String(r.body.requestId), /^[0-9a-f]{12}$/);
}

test('errors are {code, message, requestId} with the status of the code', async () => {
  assertError(await lab.request('GET', '/api/v1/agents'), 401, 'WARREN_E_UNAUTHENTICATED');
  assertError(await lab.request('GET', '/api/v1/agents', { token: 'not-a-token' }), 401, 'WARREN_E_UNAUTHENTICATED');
  const { token } = await lab.token('ana');
  assertError(await lab.request('GET', '/api/v1/agents', { token }), 403, 'WARREN_E_FORBIDDEN');
  assertError(await lab.request('POST', '/api/v1/grants', { token: lab.adminToken, body: { user: 'ana' } }), 400, 'WARREN_E_BAD_REQUEST');
  assertError(await lab.request('POST', '/api/v1/tokens', { token: lab.adminToken, body: { user: 'ana', extra: 1 } }), 400, 'WARREN_E_BAD_REQUEST');
  assertError(await lab.request('GET', '/api/v1/agents/nosuch', { token: lab.adminToken }), 404, 'WARREN_E_NOT_FOUND');
  assertError(await lab.request('GET', '/api/v1/nosuch', { token: lab.adminToken }), 404, 'WARREN_E_NOT_FOUND');
});

test('an access token issued through the API authenticates as its user', async () => {
  const issued = await lab.request('POST', '/api/v1/tokens', { token: lab.adminToken, body: { user: 'bo', groups: ['ops'], ttl: '1h' } });
  assert.equal(issued.status, 201);
  assert.deepEqual([issued.body.user, issued.body.groups], ['bo', ['ops']]);
  const me = await lab.request('GET', '/api/v1/whoami', { token: issued.body.token });
  assert.deepEqual(me.body, { user: 'bo', groups: ['ops'], via: 'token', admin: false });
  const revoked = await lab.request('DELETE', `/api/v1/tokens/${issued.body.id}`, { token: lab.adminToken });
  assert.equal(revoked.status, 200);
  assertError(await lab.request('GET', '/api/v1/whoami', { token: issued.body.token }), 401, 'WARREN_E_UNAUTHENTICATED');
});

test('a grant created through the API is listed and lets its user through the opener', async () => {
  const created = await lab.request('POST', '/api/v1/grants', { token: lab.adminToken, body: { user: 'cy', agent: 'api-a1', ports: '22' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const listed = await lab.request('GET', '/api/v1/grants', { token: lab.adminToken });
  assert.ok(listed.body.some((g: { id: string }) => g.id === created.body.id));
  const cy = { user: 'cy', groups: [], via: 'token' } as const;
  // Admission is enough to show the grant applies; port 23 is outside it.
  (await lab.hub.opener.admit({ target: 'api-a1:22', principal: cy, door: 'connect', source: 'test' })).end();
  await assert.rejects(lab.hub.opener.admit({ target: 'api-a1:23', principal: cy, door: 'connect', source: 'test' }), /no grant/);
});

test('GET /api/v1/agents shows the live tunnel', async () => {
  const agents = await lab.request('GET', '/api/v1/agents', { token: lab.adminToken });
  assert.equal(agents.status, 200);
  const a1 = agents.body.find((a: { name: string }) => a.name === 'api-a1');
  assert.equal(a1?.connected, true, JSON.stringify(agents.body));
});

/** One raw HTTP/1.1 request over TLS (the target exactly as written); the status line. */
function rawStatusLine(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: lab.hub.address.address, port: lab.hub.address.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      socket.end(`GET ${target} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('close', () => resolve(text.split('\r\n', 1)[0]!));
    socket.on('error', reject);
  });
}

test('regression: a request target starting with // is a path (GET // threw in the request handler and took the hub down)', async () => {
  assert.equal(await rawStatusLine('//'), 'HTTP/1.1 404 Not Found');
  assert.equal(await rawStatusLine('//k8s/clusters/a/api'), 'HTTP/1.1 404 Not Found');
  assert.equal(await rawStatusLine('//api/v1/whoami'), 'HTTP/1.1 404 Not Found');
  assert.equal(await rawStatusLine('/healthz'), 'HTTP/1.1 200 OK');
});

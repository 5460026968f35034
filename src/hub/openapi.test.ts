/**
 * The OpenAPI document at /api/v1/openapi.json against the real API: every route is called for real
 * (in-process hub and agent), each request body is checked against the document's request schema and
 * each answer against its response schema (ajv, JSON Schema 2020-12). A route missing from the
 * document, or one in it that this test never calls, fails the test.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import fs from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { inProcessHub, echoServer } from '../../test/support/inProcess.js';
import { createCsr } from '../pki/pki.js';

const lab = await inProcessHub();
await lab.agent('oa-a1', { route: '10.77.0.0/16', sourceIp: '127.0.0.1' });
const echoPort = await echoServer();
const ana = await lab.token('ana', ['dev']);
const admin = lab.adminToken;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is JSON; a wrong shape fails an assertion
type Json = any;
const doc: Json = (await lab.request('GET', '/api/v1/openapi.json')).body;
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });

/** Validates `value` against a schema of the document (its $refs point into the document's components). */
function assertValid(schema: Json, value: unknown, what: string): void {
  const validate = ajv.compile({ ...schema, components: doc.components });
  assert.ok(validate(value), `${what}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 600)}`);
}

const called = new Set<string>();

function operation(method: string, template: string): Json {
  const op = doc.paths[template.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
  assert.ok(op, `${method} ${template} is not in the OpenAPI document`);
  called.add(`${method} ${template}`);
  return op;
}

/**
 * Calls `path` (an instance of `template`) and checks the answer against the document: the success
 * status and its schema, or (with `status` ≥ 400) the error schema.
 */
async function call(method: string, template: string, opts: { path?: string; token?: string; body?: unknown; cert?: { certPem: string; keyPem: string }; status?: number } = {}): Promise<Json> {
  const op = operation(method, template);
  if (opts.body !== undefined) assertValid(op.requestBody.content['application/json'].schema, opts.body, `${method} ${template} request`);
  const r = await lab.request(method, opts.path ?? template, opts);
  const success = Object.keys(op.responses).find((k) => k !== 'default')!;
  assert.equal(r.status, opts.status ?? Number(success), `${method} ${opts.path ?? template}: ${JSON.stringify(r.body)}`);
  const content = r.status < 400 ? op.responses[success].content : op.responses.default.content;
  const media = String(r.headers['content-type']).split(';')[0]!;
  assert.ok(content[media], `${method} ${template} answered ${media}, which the document does not list`);
  assertValid(content[media].schema, r.body, `${method} ${template} → ${r.status}`);
  return r.body;
}

/** The first NDJSON line of a following request, checked against the document's line schema. */
async function followFirstLine(template: string, path: string, token: string): Promise<Json> {
  const op = operation('GET', template);
  const line = await new Promise<string>((resolve, reject) => {
    const req = https.get(`${lab.hub.url}${path}`, { ca: fs.readFileSync(lab.hub.caPath), headers: { authorization: `Bearer ${token}` } }, (res) => {
      assert.equal(res.headers['content-type'], 'application/x-ndjson');
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) {
          req.destroy();
          resolve(text.slice(0, text.indexOf('\n')));
        }
      });
    });
    req.on('error', reject);
  });
  const row = JSON.parse(line);
  assertValid(op.responses['200'].content['application/x-ndjson'].schema, row, `GET ${template} (follow) line`);
  return row;
}

test('every route answers what the OpenAPI document says', async () => {
  assert.equal(doc.openapi, '3.1.0');
  await call('GET', '/api/v1/openapi.json');
  assert.match((await call('GET', '/api/v1/version')).version, /^\d+\.\d+\.\d+/);
  const pem = await call('GET', '/api/v1/ca');
  assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
  assert.equal((await call('GET', '/api/v1/whoami', { token: ana.token })).user, 'ana');

  // Join tokens, and an agent that joins with one and renews its certificate over mTLS.
  const jt = await call('POST', '/api/v1/join-tokens', { token: admin, body: { ttl: '10m', uses: 1, name: 'oa-j1', labels: { site: 'x' } } });
  const key = await createCsr('oa-j1');
  const joined = await call('POST', '/api/v1/join', { body: { token: jt.token, name: 'oa-j1', csr: key.csrPem, labels: {} } });
  const next = await createCsr('oa-j1');
  await call('POST', '/api/v1/renew', { cert: { certPem: joined.certPem, keyPem: key.keyPem }, body: { csr: next.csrPem } });
  const spare = await call('POST', '/api/v1/join-tokens', { token: admin, body: {} });
  assert.ok((await call('GET', '/api/v1/join-tokens', { token: admin })).some((t: { id: string }) => t.id === spare.id));
  await call('DELETE', '/api/v1/join-tokens/:id', { path: `/api/v1/join-tokens/${spare.id}`, token: admin });

  // Access tokens and user certificates.
  const bo = await call('POST', '/api/v1/tokens', { token: admin, body: { user: 'bo', groups: ['ops'], ttl: '1h' } });
  assert.ok((await call('GET', '/api/v1/tokens', { token: admin })).some((t: { id: string }) => t.id === bo.id));
  await call('DELETE', '/api/v1/tokens/:id', { path: `/api/v1/tokens/${bo.id}`, token: admin });
  await call('POST', '/api/v1/user-certs', { token: admin, body: { user: 'cy', groups: ['dev'], ttl: '1h', csr: (await createCsr('cy')).csrPem } });

  // Agents: the live one, then the joined one (never connected) removed.
  const agents = await call('GET', '/api/v1/agents', { token: admin });
  assert.deepEqual(agents.map((a: { name: string }) => a.name).sort(), ['oa-a1', 'oa-j1']);
  assert.equal((await call('GET', '/api/v1/agents/:name', { path: '/api/v1/agents/oa-a1', token: admin })).connected, true);
  await call('DELETE', '/api/v1/agents/:name', { path: '/api/v1/agents/oa-j1', token: admin });
  // Hubs: this one alone (one store, one hub), holding the hub-side forwards, with the live agent.
  const hubs = await call('GET', '/api/v1/hubs', { token: admin });
  assert.deepEqual(hubs.map((h: { self: boolean; leader: boolean; agents: number }) => [h.self, h.leader, h.agents]), [[true, true, 1]]);

  // Grants, and what they do to route explain and the cluster list.
  const g = await call('POST', '/api/v1/grants', { token: admin, body: { user: 'ana', agent: 'oa-a1', ports: `22,${echoPort}` } });
  const kg = await call('POST', '/api/v1/grants', { token: admin, body: { group: 'dev', cluster: 'oa-*', kubeGroups: ['view'] } });
  assert.ok((await call('GET', '/api/v1/grants', { token: admin })).some((x: { id: string }) => x.id === g.id));
  const explained = await call('GET', '/api/v1/routes/explain', { path: '/api/v1/routes/explain?target=10.77.1.2:22&user=ana', token: admin });
  assert.deepEqual([explained.agent, explained.rule, explained.allowed], ['oa-a1', 3, true]);
  assert.deepEqual(await call('GET', '/api/v1/clusters', { token: ana.token }), []);
  const mine = await call('GET', '/api/v1/me/access', { token: ana.token });
  assert.deepEqual(mine.targets.map((t: { agent: string; grant: string }) => [t.agent, t.grant]), [['oa-a1', g.id]]);
  await call('GET', '/api/v1/me/access', { path: '/api/v1/me/access?user=ana&groups=dev', token: admin });
  assert.equal((await call('GET', '/api/v1/me', { token: ana.token })).user, 'ana');
  assert.equal((await call('GET', '/api/v1/me', { token: admin })).admin, true);
  await call('DELETE', '/api/v1/grants/:id', { path: `/api/v1/grants/${kg.id}`, token: admin });

  // Forwards: a hub entry to the echo server behind the agent.
  const fw = await call('POST', '/api/v1/forwards', { token: admin, body: { name: 'oa-fw', entry: 'hub:127.0.0.1:0', target: `oa-a1:${echoPort}` } });
  assert.equal(fw.listening, true, JSON.stringify(fw));
  assert.equal((await call('GET', '/api/v1/forwards', { token: admin })).length, 1);
  await call('GET', '/api/v1/forwards/:name', { path: '/api/v1/forwards/oa-fw', token: admin });
  await call('DELETE', '/api/v1/forwards/:name', { path: '/api/v1/forwards/oa-fw', token: admin });

  // Egress and ingress rules, with the agent as their gateway (it owns 127.0.0.1).
  const eg = await call('POST', '/api/v1/egress', { token: admin, body: { name: 'oa-eg', gateway: 'oa-a1', target: `127.0.0.1:${echoPort}`, sourceIp: '127.0.0.1', entry: 'hub:127.0.0.1:0' } });
  assert.deepEqual([eg.kind, eg.listening], ['egress', true]);
  assert.equal((await call('GET', '/api/v1/egress', { token: admin })).length, 1);
  await call('GET', '/api/v1/egress/:name', { path: '/api/v1/egress/oa-eg', token: admin });
  await call('DELETE', '/api/v1/egress/:name', { path: '/api/v1/egress/oa-eg', token: admin });
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const ing = await call('POST', '/api/v1/ingress', { token: admin, body: { name: 'oa-in', gateway: 'oa-a1', listen: `127.0.0.1:${port}`, target: `oa-a1:${echoPort}` } });
  assert.deepEqual([ing.kind, ing.listening], ['ingress', true]);
  assert.equal((await call('GET', '/api/v1/ingress', { token: admin })).length, 1);
  await call('GET', '/api/v1/ingress/:name', { path: '/api/v1/ingress/oa-in', token: admin });
  await call('DELETE', '/api/v1/ingress/:name', { path: '/api/v1/ingress/oa-in', token: admin });

  // An ExternalService object: its egress rule's entry on the agent (the port the ingress rule freed), the agent as gateway.
  const es = {
    apiVersion: 'externalservice.example.com/v1alpha1', kind: 'ExternalService', metadata: { name: 'oa-es', annotations: { 'warren.dev/entry-agent': 'oa-a1' } },
    spec: { targetIP: '127.0.0.1', sources: [{ service: { namespace: 'ns1', name: 'app' }, sourceIP: '127.0.0.1' }], ports: [{ protocol: 'TCP', port: echoPort, targetPort: port }] },
  };
  const applied = await call('POST', '/api/v1/externalservices', { token: admin, body: { items: [es] } });
  assert.deepEqual(applied.applied.map((a: { result: string }) => a.result), ['created']);
  assert.equal((await call('GET', '/api/v1/externalservices', { token: admin })).length, 1);
  assert.deepEqual((await call('GET', '/api/v1/externalservices/:name', { path: '/api/v1/externalservices/oa-es', token: admin })).manifest, es);
  await call('DELETE', '/api/v1/externalservices/:name', { path: '/api/v1/externalservices/oa-es', token: admin });

  // Audit: the admin changes above, listed and followed.
  const rows = await call('GET', '/api/v1/audit', { path: '/api/v1/audit?kind=admin&since=1h', token: admin });
  assert.ok(rows.some((r: { target: string }) => r.target === `grant/${g.id}`));
  const first = await followFirstLine('/api/v1/audit', '/api/v1/audit?kind=admin&follow=true', admin);
  assert.equal(first.kind, 'admin');
});

test('errors answer the error schema with the status of their code', async () => {
  assert.equal((await call('GET', '/api/v1/agents', { status: 401 })).code, 'WARREN_E_UNAUTHENTICATED');
  assert.equal((await call('GET', '/api/v1/agents', { token: ana.token, status: 403 })).code, 'WARREN_E_FORBIDDEN');
  const bad = await call('GET', '/api/v1/audit', { path: '/api/v1/audit?limit=0', token: admin, status: 400 });
  assert.deepEqual([bad.code, bad.field], ['WARREN_E_BAD_REQUEST', 'limit']);
  const kind = await call('GET', '/api/v1/audit', { path: '/api/v1/audit?kind=nope', token: admin, status: 400 });
  assert.equal(kind.message, 'kind: must be stream, kube, admin, agent or shell');
  const missing = await call('GET', '/api/v1/routes/explain', { token: admin, status: 400 });
  assert.deepEqual([missing.field, missing.message], ['target', 'target: required: ?target=HOST:PORT']);
  const body = await call('POST', '/api/v1/tokens', { token: admin, body: { user: 'ana' }, status: 201 });
  assert.equal(body.user, 'ana');
  const ttl = await lab.request('POST', '/api/v1/tokens', { token: admin, body: { user: 'ana', ttl: 'soon' } });
  assert.deepEqual([ttl.status, ttl.body.field], [400, 'ttl']);
});

test('the document lists every route, and this test calls every route in it', () => {
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
  assert.deepEqual([...called].sort(), documented.sort());
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops as Record<string, Json>)) {
      assert.ok(op.summary && op.operationId, `${m} ${p} has a summary and an operationId`);
      assert.ok(Object.keys(op.responses).some((k) => k !== 'default'), `${m} ${p} documents its success answer`);
    }
  }
});

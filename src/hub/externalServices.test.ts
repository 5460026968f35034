/**
 * ExternalService objects: the mapping from a document to rules (pure), and apply/get/delete through
 * the admin API of a real in-process hub with a gateway agent and an entry agent: all or nothing,
 * idempotent, a changed document replaces its rules, delete closes at once, audited.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { freePort, inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import { parseExternalServices, type ExternalService } from '../shared/externalService.js';
import { WarrenError } from '../shared/errors.js';
import { rulesOf } from './externalServices.js';

const SEED = `
apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: ext1
  annotations: {warren.dev/entry-agent: cluster}
spec:
  targetIP: 192.168.122.139
  sources:
    - service: {namespace: ns1, name: my-service1, ports: [80]}
      sourceIP: 192.168.122.200
    - service: {namespace: ns2, name: my-service2}
      sourceIP: 192.168.122.201
  ports:
    - {protocol: TCP, port: 8000, targetPort: 8000}
    - {protocol: TCP, port: 5432, targetPort: 15432}
`;

test('a document maps to one egress rule per source and port, and one ingress rule per source service port', () => {
  const [doc] = parseExternalServices(SEED, 'seed');
  const rules = rulesOf(doc!, (ip) => (ip.endsWith('.200') ? 'gw1' : 'gw2'));
  assert.deepEqual(rules.map((r) => [r.name, r.kind, r.gateway, r.sourceIp, r.entry, r.target, r.allowFrom]), [
    ['ext1-e0-8000', 'egress', 'gw1', '192.168.122.200', 'cluster:8000', '192.168.122.139:8000', []],
    ['ext1-e0-15432', 'egress', 'gw1', '192.168.122.200', 'cluster:15432', '192.168.122.139:5432', []],
    ['ext1-i0-80', 'ingress', 'gw1', '192.168.122.200', 'gw1:192.168.122.200:80', 'my-service1.ns1.svc.cluster.local.cluster.warren:80', ['192.168.122.139']],
    ['ext1-e1-8000', 'egress', 'gw2', '192.168.122.201', 'cluster:8001', '192.168.122.139:8000', []],
    ['ext1-e1-15432', 'egress', 'gw2', '192.168.122.201', 'cluster:15433', '192.168.122.139:5432', []],
  ]);
  const refuse = () => rulesOf(doc!, (ip, field) => {
    throw new WarrenError('WARREN_E_BAD_REQUEST', `${field}: nobody owns ${ip}`);
  });
  assert.throws(refuse, { message: 'spec.sources[0].sourceIP: nobody owns 192.168.122.200' });
  const high = { ...doc!, spec: { ...doc!.spec, ports: [{ protocol: 'TCP', port: 1, targetPort: 65535 }] } } as ExternalService;
  assert.throws(() => rulesOf(high, () => 'gw'), { message: 'spec.ports[0].targetPort: source 1 would listen on 65536 (targetPort + source index), above 65535' });
});

const lab = await inProcessHub();
await lab.agent('gw', { sourceIp: '127.0.0.1', allow: '127.0.0.1' });
await lab.agent('cl');
const admin = (method: string, path: string, body?: unknown) => lab.request(method, path, { token: lab.adminToken, body });

/** Connects and reads until the far side closes; `reset` when the connection failed or was cut. */
function fetchLine(port: number): Promise<{ text: string; reset: boolean }> {
  return withDeadline(new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let reset = false;
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('error', () => (reset = true));
    s.on('close', () => resolve({ text, reset }));
  }), 5_000, `an answer from port ${port}`);
}

function doc(name: string, targetPort: number, port: number, sourceIP = '127.0.0.1') {
  return {
    apiVersion: 'externalservice.example.com/v1alpha1', kind: 'ExternalService',
    metadata: { name, annotations: { 'warren.dev/entry-agent': 'cl' } },
    spec: { targetIP: '127.0.0.1', sources: [{ service: { namespace: 'ns1', name: 'app' }, sourceIP }], ports: [{ protocol: 'TCP', port, targetPort }] },
  };
}

test('apply creates the rules, re-applying changes nothing, a changed document replaces them, delete closes them', async (t) => {
  const who = net.createServer((s) => s.end(`${s.remoteAddress}\n`)).listen(0, '127.0.0.1');
  await once(who, 'listening');
  t.after(() => who.close());
  const target = (who.address() as net.AddressInfo).port;
  const entry = await freePort();

  const created = await admin('POST', '/api/v1/externalservices', { items: [doc('svc1', entry, target)] });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.deepEqual(created.body.applied.map((a: { name: string; result: string }) => [a.name, a.result]), [['svc1', 'created']]);
  const [rule] = created.body.applied[0].rules;
  assert.deepEqual([rule.name, rule.kind, rule.owner, rule.gateway, rule.listening, rule.entry], [`svc1-e0-${entry}`, 'egress', 'externalservice/svc1', 'gw', true, `cl:0.0.0.0:${entry}`]);
  assert.equal((await fetchLine(entry)).text, '127.0.0.1\n');

  const again = await admin('POST', '/api/v1/externalservices', { items: [doc('svc1', entry, target)] });
  assert.equal(again.body.applied[0].result, 'unchanged');
  assert.equal(again.body.applied[0].rules[0].connections, 1, 'the rule was left running');

  const owned = await admin('DELETE', `/api/v1/egress/svc1-e0-${entry}`);
  assert.equal(owned.status, 409);
  assert.match(owned.body.message, /belongs to ExternalService "svc1": change its file and `warren apply` it again, or `warren delete externalservice svc1`/);

  const moved = await freePort();
  const changed = await admin('POST', '/api/v1/externalservices', { items: [doc('svc1', moved, target)] });
  assert.equal(changed.body.applied[0].result, 'configured');
  assert.equal((await fetchLine(entry)).reset, true, 'the old entry closed');
  assert.equal((await fetchLine(moved)).text, '127.0.0.1\n');
  const got = await admin('GET', '/api/v1/externalservices/svc1');
  assert.deepEqual(got.body.manifest, doc('svc1', moved, target));
  assert.deepEqual(got.body.rules.map((r: { name: string }) => r.name), [`svc1-e0-${moved}`]);

  assert.equal((await admin('DELETE', '/api/v1/externalservices/svc1')).status, 200);
  assert.equal((await fetchLine(moved)).reset, true, 'closed once the delete answered');
  assert.deepEqual((await admin('GET', '/api/v1/externalservices')).body, []);
  assert.equal((await admin('DELETE', '/api/v1/externalservices/svc1')).status, 404);
  assert.equal((await lab.hub.store.listForwards()).some((r) => r.owner === 'externalservice/svc1'), false);

  const audit = await lab.hub.store.queryAudit({ kind: 'admin' });
  const reasons = audit.filter((r) => r.target === 'externalservice/svc1').map((r) => r.reason);
  assert.deepEqual(reasons, [
    `externalservice created: 1 egress, 0 ingress rules (svc1-e0-${entry})`,
    `externalservice unchanged: 1 egress, 0 ingress rules (svc1-e0-${entry})`,
    `externalservice configured: 1 egress, 0 ingress rules (svc1-e0-${moved})`,
    'externalservice deleted with its rules',
  ]);
});

test('all or nothing: an unowned source address or a busy entry port in one document applies none of them', async (t) => {
  const kept = await freePort();
  assert.equal((await admin('POST', '/api/v1/externalservices', { items: [doc('keep', kept, 9)] })).status, 200);
  const fresh = await freePort();

  const unowned = await admin('POST', '/api/v1/externalservices', { items: [doc('fresh', fresh, 9), doc('keep', kept + 1, 9, '127.0.0.9')] });
  assert.equal(unowned.status, 400);
  assert.match(unowned.body.message, /^externalservice "keep": spec\.sources\[0\]\.sourceIP: no gateway agent owns 127\.0\.0\.9; start one on a host that has the address with `warren agent --source-ip 127\.0\.0\.9`/);

  const busy = net.createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  t.after(() => busy.close());
  const busyPort = (busy.address() as net.AddressInfo).port;
  const inUse = await admin('POST', '/api/v1/externalservices', { items: [doc('fresh', fresh, 9), doc('keep', busyPort, 9)] });
  assert.equal(inUse.status, 409, JSON.stringify(inUse.body));
  assert.match(inUse.body.message, new RegExp(`^externalservice "keep": nothing applied: egress rule "keep-e0-${busyPort}": .*in use`));

  const clash = await admin('POST', '/api/v1/externalservices', { items: [doc('fresh', kept, 9)] });
  assert.equal(clash.status, 409);
  assert.match(clash.body.message, new RegExp(`^externalservice "fresh": spec\\.sources\\[0\\]: rule "fresh-e0-${kept}": entry cl:0\\.0\\.0\\.0:${kept} overlaps egress "keep-e0-${kept}"`));

  const bad = await admin('POST', '/api/v1/externalservices', { items: [{ ...doc('fresh', fresh, 9), extra: 1 }] });
  assert.equal(bad.status, 400);

  const names = (await admin('GET', '/api/v1/externalservices')).body.map((s: { name: string; rules: Array<{ name: string; listening: boolean }> }) => [s.name, s.rules.map((r) => [r.name, r.listening])]);
  assert.deepEqual(names, [['keep', [[`keep-e0-${kept}`, true]]]], 'fresh was never created and keep is as it was');
  assert.equal((await lab.hub.store.listForwards()).filter((r) => r.owner !== null).length, 1);
});

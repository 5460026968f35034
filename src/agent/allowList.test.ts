import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList } from './allowList.js';
import { agentConfig, defaultAgentName } from './config.js';

test('allow-list: own host, globs, CIDRs, DNS-suffix routes and port lists', async () => {
  const a = new AllowList(['localhost', '*.corp.internal', '10.20.0.0/16', '.svc.cluster.local', 'db.example:5432,5433']);
  assert.equal(await a.check('localhost', 22), 'localhost');
  assert.equal(await a.check('git.corp.internal', 443), 'git.corp.internal');
  assert.equal(await a.check('10.20.9.9', 80), '10.20.9.9');
  assert.equal(await a.check('10.21.0.1', 80), undefined);
  assert.equal(await a.check('api.ns.svc.cluster.local', 443), 'api.ns.svc.cluster.local');
  assert.equal(await a.check('db.example', 5433), 'db.example');
  assert.equal(await a.check('db.example', 22), undefined);
  assert.equal(await a.check('evil.example', 22), undefined);
});

test('a name is resolved before a CIDR check and the checked address is what gets dialled', async () => {
  const a = new AllowList(['127.0.0.0/8']);
  assert.equal(await a.check('localhost', 22), '127.0.0.1');
  assert.equal(await new AllowList(['10.0.0.0/8']).check('localhost', 22), undefined);
});

test('agent config: defaults and start-up validation', () => {
  const c = agentConfig({ route: '10.20.0.0/16,.corp', name: 'n1' }, {});
  assert.deepEqual(c.allow, ['localhost', '127.0.0.1', '::1', '10.20.0.0/16', '.corp']);
  assert.throws(() => agentConfig({ name: 'Bad_Name' }, {}), /RFC 1123/);
  assert.throws(() => agentConfig({ route: 'nonsense' }, {}), /--route/);
  assert.throws(() => agentConfig({ token: 'a', tokenFile: 'b' }, {}), /alternatives/);
  assert.throws(() => agentConfig({ pingInterval: 'soon' }, {}), /--ping-interval/);
  assert.equal(agentConfig({}, { HTTPS_PROXY: 'http://p:3128' }).httpsProxy, 'http://p:3128');
  assert.equal(defaultAgentName('Web_01.corp.example'), 'web-01');
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { agentConfig } from './config.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-agent-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const configError = (re: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && re.test(err.message);

test('the join token: --token, else WARREN_JOIN_TOKEN; --token-file wins over the environment without a conflict', () => {
  const tokenFile = path.join(dir, 'join');
  fs.writeFileSync(tokenFile, 'wj1.from-file\n');
  assert.equal(agentConfig({ name: 'a' }, { WARREN_JOIN_TOKEN: 'wj1.from-env' }).token, 'wj1.from-env');
  assert.equal(agentConfig({ name: 'a', token: 'wj1.flag' }, { WARREN_JOIN_TOKEN: 'wj1.from-env' }).token, 'wj1.flag');
  assert.equal(agentConfig({ name: 'a', tokenFile }, { WARREN_JOIN_TOKEN: 'wj1.from-env' }).token, 'wj1.from-file');
  assert.throws(() => agentConfig({ name: 'a', token: 'wj1.flag', tokenFile }, {}), configError(/^--token and --token-file are alternatives: give one$/));
  assert.throws(() => agentConfig({ name: 'a', tokenFile: path.join(dir, 'missing') }, {}), configError(/^--token-file .*missing: ENOENT/));
});

test('--log-level, else WARREN_LOG_LEVEL, else info; a bad value names where it came from', () => {
  assert.equal(agentConfig({ name: 'a' }, {}).logLevel, 'info');
  assert.equal(agentConfig({ name: 'a' }, { WARREN_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  assert.equal(agentConfig({ name: 'a', logLevel: 'warn' }, { WARREN_LOG_LEVEL: 'debug' }).logLevel, 'warn');
  assert.throws(() => agentConfig({ name: 'a' }, { WARREN_LOG_LEVEL: 'loud' }), configError(/^WARREN_LOG_LEVEL: must be trace, debug/));
  assert.throws(() => agentConfig({ name: 'a', logLevel: 'loud' as 'info' }, {}), configError(/^--log-level: must be trace, debug/));
});

test('--identity-secret: a Secret name, and only inside a pod', () => {
  const pod = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  assert.equal(agentConfig({ name: 'a', identitySecret: 'warren-agent-identity' }, pod).identitySecret, 'warren-agent-identity');
  assert.equal(agentConfig({ name: 'a' }, pod).identitySecret, undefined);
  assert.throws(() => agentConfig({ name: 'a', identitySecret: 'warren-agent-identity' }, {}), configError(/^--identity-secret: KUBERNETES_SERVICE_HOST\/PORT are not set; is this running in a pod\?/));
  assert.throws(() => agentConfig({ name: 'a', identitySecret: 'Bad_Name' }, pod), configError(/^--identity-secret: "Bad_Name" is not a Kubernetes object name/));
});

test('--kube in-cluster: one cluster named after the agent, probes on :8081, and only inside a pod', () => {
  const pod = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  const c = agentConfig({ name: 'alpha-1', kube: 'in-cluster' }, pod);
  assert.deepEqual([c.kube, c.clusters, c.healthListen], [{ kind: 'in-cluster' }, ['alpha-1'], { host: '0.0.0.0', port: 8081 }]);
  assert.equal(agentConfig({ name: 'a', kube: 'in-cluster', healthListen: 'off' }, pod).healthListen, undefined);
  assert.equal(agentConfig({ name: 'a' }, {}).healthListen, undefined);
  assert.throws(() => agentConfig({ name: 'a', kube: 'in-cluster' }, {}), configError(/KUBERNETES_SERVICE_HOST\/PORT are not set/));
  assert.throws(() => agentConfig({ name: 'a', kube: 'in-cluster', cluster: 'x,y' }, pod), configError(/--kube serves one cluster/));
  assert.throws(() => agentConfig({ name: 'a', kubeContext: 'ctx' }, {}), configError(/--kube-context goes with --kube KUBECONFIG/));
  assert.throws(() => agentConfig({ name: 'a', healthListen: 'nowhere' }, {}), configError(/^--health-listen: "nowhere" is not HOST:PORT \(or off\)/));
});

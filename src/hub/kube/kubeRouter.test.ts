/**
 * The kube router in process: a real hub, an agent started with --kube pointing at a kube-apiserver
 * stand-in (test/support/kube/apiserver.ts) in this same process, and requests over HTTPS.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { startFakeApiserver } from '../../../test/support/kube/apiserver.js';
import { inProcessHub } from '../../../test/support/inProcess.js';
import { tempDir } from '../../../test/support/warren.js';

const api = await startFakeApiserver();
after(() => api.close());
const dir = tempDir('kube-router');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const kubeconfig = path.join(dir, 'agent.kubeconfig');
fs.writeFileSync(kubeconfig, api.kubeconfig('agent'), { mode: 0o600 });

const lab = await inProcessHub();
await lab.agent('k1-a', { kube: kubeconfig, cluster: 'k1' });
await lab.grant({ subjectKind: 'user', subject: 'dev', cluster: 'k1' });
const dev = (await lab.token('dev')).token;
const PODS = '/k8s/clusters/k1/api/v1/namespaces/team-a/pods';

test("a granted user's request reaches the member API as that user (impersonated by the agent's credentials)", async () => {
  const r = await lab.request('GET', PODS, { token: dev });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.kind, 'PodList');
  const seen = api.requests.at(-1)!;
  assert.equal(seen.path, '/api/v1/namespaces/team-a/pods');
  assert.equal(seen.authenticatedUser, api.identities.agent!.user);
  assert.equal(seen.user, 'dev');
});

test("the member cluster's RBAC decides for the impersonated user", async () => {
  const r = await lab.request('GET', '/k8s/clusters/k1/api/v1/namespaces/kube-system/pods', { token: dev });
  assert.equal(r.status, 403);
  assert.equal(api.requests.at(-1)!.user, 'dev');
});

test('without a grant, for an unknown cluster, or without credentials the hub answers and the member API sees nothing', async () => {
  const seen = api.requests.length;
  const eve = (await lab.token('eve')).token;
  assert.equal((await lab.request('GET', PODS, { token: eve })).status, 403);
  assert.equal((await lab.request('GET', '/k8s/clusters/nosuch/api/v1/pods', { token: dev })).status, 404);
  assert.equal((await lab.request('GET', PODS)).status, 401);
  assert.equal(api.requests.length, seen);
});

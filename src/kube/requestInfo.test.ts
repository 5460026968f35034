import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kubeRequestInfo, resourceLabel } from './requestInfo.js';

const cases: Array<[string, string, string, Partial<ReturnType<typeof kubeRequestInfo>>, boolean?]> = [
  ['GET', '/api/v1/namespaces/team-a/pods', '', { verb: 'list', resource: 'pods', namespace: 'team-a', name: '' }],
  ['GET', '/api/v1/namespaces/team-a/pods', 'watch=true&resourceVersion=5', { verb: 'watch', resource: 'pods', namespace: 'team-a' }],
  ['GET', '/api/v1/namespaces/team-a/pods', 'watch=1', { verb: 'watch' }],
  ['GET', '/api/v1/namespaces/team-a/pods', 'watch=false', { verb: 'list' }],
  ['GET', '/api/v1/watch/namespaces/team-a/pods', '', { verb: 'watch', resource: 'pods', namespace: 'team-a' }],
  ['GET', '/api/v1/pods', '', { verb: 'list', resource: 'pods', namespace: '' }],
  ['GET', '/api/v1/namespaces/team-a/pods/web-1', '', { verb: 'get', name: 'web-1' }],
  ['GET', '/api/v1/namespaces/team-a/pods/web-1/log', 'follow=true', { verb: 'get', resource: 'pods', subresource: 'log', name: 'web-1' }],
  ['POST', '/api/v1/namespaces/team-a/pods/web-1/exec', 'command=cat', { verb: 'create', subresource: 'exec' }],
  ['GET', '/api/v1/namespaces/team-a/pods/web-1/exec', 'command=cat', { verb: 'create', subresource: 'exec' }, true],
  ['GET', '/api/v1/namespaces/team-a/pods/web-1/portforward', '', { verb: 'create', subresource: 'portforward' }, true],
  ['POST', '/api/v1/namespaces/team-a/pods', '', { verb: 'create', resource: 'pods', namespace: 'team-a' }],
  ['PUT', '/api/v1/namespaces/team-a/pods/web-1', '', { verb: 'update', name: 'web-1' }],
  ['PATCH', '/apis/apps/v1/namespaces/x/deployments/web', '', { verb: 'patch', apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', name: 'web', namespace: 'x' }],
  ['DELETE', '/api/v1/namespaces/team-a/pods/web-1', '', { verb: 'delete', name: 'web-1' }],
  ['DELETE', '/api/v1/namespaces/team-a/pods', '', { verb: 'deletecollection' }],
  ['GET', '/api/v1/namespaces', '', { verb: 'list', resource: 'namespaces', namespace: '', name: '' }],
  ['GET', '/api/v1/namespaces/team-a', '', { verb: 'get', resource: 'namespaces', name: 'team-a', namespace: '' }],
  ['GET', '/api/v1/namespaces/team-a/status', '', { verb: 'get', resource: 'namespaces', subresource: 'status', name: 'team-a', namespace: '' }],
  ['DELETE', '/api/v1/namespaces/scratch', '', { verb: 'delete', resource: 'namespaces', name: 'scratch' }],
  ['GET', '/api/v1/namespaces/team-a/pods', 'fieldSelector=metadata.name%3Dweb-1', { verb: 'list', name: 'web-1' }],
  ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles', '', { verb: 'list', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' }],
  ['GET', '/api', '', { resourceRequest: false, verb: 'get', resource: '' }],
  ['GET', '/api/v1', '', { resourceRequest: false, verb: 'get' }],
  ['GET', '/apis/apps/v1', '', { resourceRequest: false, verb: 'get' }],
  ['GET', '/apis', '', { resourceRequest: false }],
  ['GET', '/version', '', { resourceRequest: false, verb: 'get' }],
  ['GET', '/openapi/v3/apis/apps/v1', 'hash=X', { resourceRequest: false }],
  ['POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', '', { verb: 'create', resource: 'selfsubjectaccessreviews', apiGroup: 'authorization.k8s.io' }],
];

test('kube request attributes, as the API server derives them', () => {
  for (const [method, path, query, want, upgrade] of cases) {
    const got = kubeRequestInfo(method, path, new URLSearchParams(query), { upgrade: upgrade ?? false });
    for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof typeof got], v, `${method} ${path}?${query}: ${k}`);
  }
});

test('resource labels name the group and subresource like the API server messages do', () => {
  assert.equal(resourceLabel(kubeRequestInfo('GET', '/api/v1/namespaces/a/pods/x/log', new URLSearchParams())), 'pods/log');
  assert.equal(resourceLabel(kubeRequestInfo('GET', '/apis/apps/v1/deployments', new URLSearchParams())), 'deployments.apps');
  assert.equal(resourceLabel(kubeRequestInfo('GET', '/version', new URLSearchParams())), '');
});

test('odd paths never throw', () => {
  for (const p of ['/', '', '/api/', '/apis/x', '/api/v1/namespaces/', '/api/v1/%zz/pods', '//api//v1//pods']) {
    assert.doesNotThrow(() => kubeRequestInfo('GET', p, new URLSearchParams()));
  }
});

test('discovery paths, whose errors kubectl reads raw', async () => {
  const { isDiscoveryPath } = await import('./status.js');
  for (const p of ['/api', '/api?timeout=32s', '/api/v1', '/api/v1/', '/apis', '/apis/apps/v1', '/apis/apps', '/version', '/version?timeout=1s', '/openapi/v3', '/openapi/v3/apis/apps/v1?hash=x']) {
    assert.ok(isDiscoveryPath(p), p);
  }
  for (const p of ['/api/v1/pods', '/api/v1/namespaces/a/pods', '/apis/apps/v1/deployments', '/apiserver', '/healthz', '/']) assert.ok(!isDiscoveryPath(p), p);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTargetGrant, clusterAccess } from './policy.js';
import { hostMatches, parsePorts, matchesGlob } from '../shared/patterns.js';
import type { GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';

const grant = (g: Partial<GrantRecord>): GrantRecord => ({
  id: 'g', subjectKind: 'user', subject: 'ana', agent: null, host: null, ports: null, cluster: null, kubeGroups: [], createdAt: 0, createdBy: 'admin', ...g,
});
const ana: Principal = { user: 'ana', groups: ['ops'], via: 'token' };
const bob: Principal = { user: 'bob', groups: [], via: 'token' };

test('patterns: globs, CIDRs and ports', () => {
  assert.ok(matchesGlob('site-*', 'site-1'));
  assert.ok(!matchesGlob('site-*', 'xsite-1'));
  assert.ok(matchesGlob('db-?', 'db-1'));
  assert.ok(hostMatches('10.20.0.0/16', '10.20.3.4'));
  assert.ok(!hostMatches('10.20.0.0/16', '10.21.0.1'));
  assert.ok(!hostMatches('10.20.0.0/16', 'db.corp'));
  assert.ok(hostMatches('fd00::/8', 'fd12::1'));
  assert.ok(hostMatches('*.corp.internal', 'git.corp.internal'));
  assert.deepEqual(parsePorts('22,8000-8100'), [[22, 22], [8000, 8100]]);
  for (const bad of ['', '0', '70000', '10-5', 'a', '22,']) assert.equal(parsePorts(bad), undefined, bad);
});

test('default deny; a grant opens exactly its agent, host and ports', () => {
  const grants = [grant({ agent: 'site-*', host: '10.20.0.0/16', ports: '22,8000-8100' })];
  const ok = { agent: 'site-1', host: '10.20.0.5', port: 8080 };
  assert.ok(findTargetGrant(grants, ana, ok));
  assert.equal(findTargetGrant(grants, bob, ok), undefined);
  assert.equal(findTargetGrant(grants, ana, { ...ok, port: 23 }), undefined);
  assert.equal(findTargetGrant(grants, ana, { ...ok, agent: 'prod-1' }), undefined);
  assert.equal(findTargetGrant(grants, ana, { ...ok, host: '10.30.0.1' }), undefined);
  assert.equal(findTargetGrant([], ana, ok), undefined);
});

test('group grants and admins', () => {
  assert.ok(findTargetGrant([grant({ subjectKind: 'group', subject: 'ops', agent: '*' })], ana, { agent: 'x', host: 'localhost', port: 1 }));
  assert.equal(findTargetGrant([], { user: 'root', groups: ['warren:admins'], via: 'token' }, { agent: 'x', host: 'y', port: 1 }), 'admin');
});

test('cluster grants never open targets, and target grants never open clusters', () => {
  const grants = [grant({ cluster: 'prod', kubeGroups: ['view'] }), grant({ agent: 'a' })];
  assert.equal(findTargetGrant([grants[0]!], ana, { agent: 'prod', host: 'localhost', port: 443 }), undefined);
  assert.deepEqual(clusterAccess(grants, ana, 'prod'), { allowed: true, kubeGroups: ['view'] });
  assert.deepEqual(clusterAccess(grants, ana, 'dev'), { allowed: false, kubeGroups: [] });
});

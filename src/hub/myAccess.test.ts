import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { grantsOf, reachableTargets, type AgentState } from './myAccess.js';

function grant(id: string, g: Partial<GrantRecord>): GrantRecord {
  return { id, subjectKind: 'user', subject: 'ana', agent: null, host: null, ports: null, cluster: null, kubeGroups: [], createdAt: 0, createdBy: 't', ...g };
}
function agent(name: string, connected = true): AgentState {
  return { name, connected, rttMs: connected ? 2 : null, lastSeen: null, version: '1', labels: {}, routes: [] };
}

const ana: Principal = { user: 'ana', groups: ['dev'], via: 'token' };
const agents = [agent('web-2', false), agent('web-1'), agent('db-1')];
const grants = [
  grant('g1', { agent: 'web-*', ports: '22' }),
  grant('g2', { subjectKind: 'group', subject: 'dev', agent: 'web-1', host: '10.0.0.0/8', ports: '443' }),
  grant('g3', { subject: 'bob', agent: '*' }),
  grant('g4', { subjectKind: 'group', subject: 'dev', cluster: 'prod' }),
];

test('one row per agent and grant that covers it, sorted by agent; other users\' grants ignored', () => {
  assert.deepEqual(reachableTargets(ana, grants, agents).map((t) => [t.agent, t.connected, t.hosts, t.ports, t.grant]), [
    ['web-1', true, '*', '22', 'g1'],
    ['web-1', true, '10.0.0.0/8', '443', 'g2'],
    ['web-2', false, '*', '22', 'g1'],
  ]);
});

test('an admin reaches every agent, every host and port', () => {
  const admin: Principal = { user: 'root', groups: ['warren:admins'], via: 'token' };
  assert.deepEqual(reachableTargets(admin, [], agents).map((t) => [t.agent, t.hosts, t.ports, t.grant]), [
    ['db-1', '*', '*', 'admin'], ['web-1', '*', '*', 'admin'], ['web-2', '*', '*', 'admin'],
  ]);
});

test('grantsOf: the grants naming the user or one of their groups, cluster grants included', () => {
  assert.deepEqual(grantsOf(ana, grants).map((g) => g.id), ['g1', 'g2', 'g4']);
  assert.deepEqual(reachableTargets({ user: 'zed', groups: [], via: 'token' }, grants, agents), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveTarget, type RoutableAgent, type RouterView } from './router.js';
import { WarrenError } from '../shared/errors.js';

function view(agents: RoutableAgent[], known: string[] = []): RouterView {
  return { connected: () => agents, isKnown: (n) => known.includes(n) || agents.some((a) => a.name === n) };
}
const agent = (name: string, routes: string[] = [], streamsOpen = 0): RoutableAgent => ({ name, routes, streamsOpen });

test('rule 1: HOST.<agent>.warren and <agent>.warren', () => {
  const v = view([agent('alpha')]);
  assert.deepEqual(resolveTarget('db.prod.svc.cluster.local.alpha.warren', v), { rule: 1, agents: ['alpha'], dialHost: 'db.prod.svc.cluster.local' });
  assert.deepEqual(resolveTarget('alpha.warren', v), { rule: 1, agents: ['alpha'], dialHost: 'localhost' });
});

test('rule 2: an agent name is its own host', () => {
  assert.deepEqual(resolveTarget('worker', view([agent('worker')])), { rule: 2, agents: ['worker'], dialHost: 'localhost' });
});

test('rule 3: longest route wins; ties are all candidates, least loaded first', () => {
  const v = view([agent('wide', ['10.0.0.0/8']), agent('a', ['10.20.0.0/16'], 5), agent('b', ['10.20.0.0/16'], 1), agent('dns', ['.corp.internal'])]);
  const r = resolveTarget('10.20.0.5', v);
  assert.equal(r.rule, 3);
  assert.equal(r.route, '10.20.0.0/16');
  assert.deepEqual(r.agents, ['b', 'a']);
  assert.deepEqual(resolveTarget('10.99.1.1', v).agents, ['wide']);
  assert.deepEqual(resolveTarget('git.corp.internal', v).agents, ['dns']);
});

test('rule 4 and offline agents: errors name the host', () => {
  const v = view([agent('alpha', ['10.20.0.0/16'])], ['sleepy']);
  assert.throws(() => resolveTarget('nosuch', v), (e: WarrenError) => e.code === 'WARREN_E_UNKNOWN_TARGET' && e.message.includes('"nosuch"'));
  assert.throws(() => resolveTarget('x.nobody.warren', v), (e: WarrenError) => e.code === 'WARREN_E_UNKNOWN_TARGET' && e.message.includes('nobody'));
  assert.throws(() => resolveTarget('sleepy', v), (e: WarrenError) => e.code === 'WARREN_E_AGENT_OFFLINE');
  assert.throws(() => resolveTarget('db.sleepy.warren', v), (e: WarrenError) => e.code === 'WARREN_E_AGENT_OFFLINE');
  assert.throws(() => resolveTarget('192.168.1.1', v), (e: WarrenError) => e.code === 'WARREN_E_UNKNOWN_TARGET');
});

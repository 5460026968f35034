import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AgentIndex, listView, resolveTarget, routeScore, type RoutableAgent, type RouterView } from './router.js';
import { WarrenError } from '../shared/errors.js';

function view(agents: RoutableAgent[], known: string[] = []): RouterView {
  return listView(agents, (n) => known.includes(n) || agents.some((a) => a.name === n));
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

test('property: the route index finds what routeScore over every agent finds, through adds, replacements and removals', () => {
  const routes = ['10.0.0.0/8', '10.1.0.0/8', '10.20.0.0/16', '10.20.3.0/24', '10.20.3.7/32', '0.0.0.0/0', 'fd00::/8', 'fd00:1::/32', '::/0', '.corp.internal', '.internal', '.prod.corp.internal', 'db.corp.internal', 'Exact.Name', '.Upper.case'];
  const hosts = ['10.20.3.7', '10.20.3.8', '10.20.9.9', '10.99.0.1', '11.0.0.1', '192.168.1.1', 'fd00:1::5', 'fd00:2::5', '2001:db8::1', 'db.corp.internal', 'x.prod.corp.internal', 'corp.internal', 'a.internal', 'exact.name', 'x.upper.case', 'elsewhere.org'];
  const names = ['a', 'b', 'c', 'd', 'e'];
  const op = fc.oneof(
    fc.record({ name: fc.constantFrom(...names), routes: fc.subarray(routes, { maxLength: 4 }), streamsOpen: fc.nat(3) }),
    fc.record({ remove: fc.constantFrom(...names) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 12 }), fc.constantFrom(...names), (ops, skipped) => {
      const index = new AgentIndex<RoutableAgent>();
      const fleet = new Map<string, RoutableAgent>();
      for (const o of ops) {
        if ('remove' in o) assert.equal(index.delete(o.remove), fleet.delete(o.remove));
        else {
          index.set(o);
          fleet.set(o.name, o);
        }
      }
      assert.deepEqual([...index.keys()].sort(), [...fleet.keys()].sort());
      for (const host of hosts) {
        for (const skip of [undefined, (a: RoutableAgent) => a.name === skipped]) {
          let best = -1;
          let winners: string[] = [];
          for (const a of fleet.values()) {
            if (skip?.(a)) continue;
            const score = Math.max(-1, ...a.routes.map((r) => routeScore(r, host)));
            if (score < 0 || score < best) continue;
            if (score > best) winners = [];
            best = score;
            winners.push(a.name);
          }
          const m = index.lookup(host, skip);
          assert.deepEqual(m ? { score: m.score, agents: m.agents.map((a) => a.name).sort() } : undefined, best < 0 ? undefined : { score: best, agents: winners.sort() }, `${host}${skip ? ` without ${skipped}` : ''}`);
          if (m) assert.equal(routeScore(m.route, host), m.score, `${m.route} is a route of ${m.agents[0]!.name} covering ${host}`);
        }
      }
    }),
    { numRuns: 2_000 },
  );
});

test('the route index: a removed agent\'s routes are gone, a network emptied leaves no prefix behind', () => {
  const index = new AgentIndex<RoutableAgent>();
  index.set(agent('a', ['10.20.0.0/16', '.corp.internal']));
  index.set(agent('b', ['10.20.0.0/16']));
  assert.deepEqual(index.lookup('10.20.1.1')?.agents.map((a) => a.name), ['a', 'b']);
  index.set(agent('a', ['10.0.0.0/8']));
  assert.deepEqual(index.lookup('10.20.1.1')?.agents.map((a) => a.name), ['b'], 'a replaced: its old routes went with it');
  assert.equal(index.lookup('x.corp.internal'), undefined);
  index.delete('b');
  assert.deepEqual(index.lookup('10.20.1.1'), { route: '10.0.0.0/8', score: 8, agents: [index.get('a')] });
  index.clear();
  assert.equal(index.size, 0);
  assert.equal(index.lookup('10.20.1.1'), undefined);
});

test('the cluster index: who serves a cluster, through replacements and removals', () => {
  const clusters = new Map([['a', ['prod', 'dev']], ['b', ['prod']]]);
  const index = new AgentIndex<RoutableAgent>((x) => clusters.get(x.name) ?? []);
  index.set(agent('a'));
  index.set(agent('b'));
  assert.deepEqual(index.serving('prod').map((x) => x.name), ['a', 'b']);
  assert.deepEqual(index.serving('dev').map((x) => x.name), ['a']);
  index.delete('a');
  assert.deepEqual(index.serving('prod').map((x) => x.name), ['b']);
  assert.deepEqual(index.serving('dev'), []);
  const b2 = agent('b');
  index.set(b2);
  assert.deepEqual(index.serving('prod'), [b2], 'the replaced agent is gone, its successor serves');
  assert.deepEqual(index.serving('nosuch'), []);
});

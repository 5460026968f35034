import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentRecord, GrantRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { explainRoute, type LiveAgents } from './routeExplain.js';
import { listView } from './router.js';

interface Up {
  name: string;
  routes: string[];
  streamsOpen?: number;
}

function live(up: Up[], known: string[]): LiveAgents {
  const agents = up.map((a) => ({ name: a.name, routes: a.routes, streamsOpen: a.streamsOpen ?? 0, info: { routes: a.routes } }));
  return listView(agents, (n) => known.includes(n) || agents.some((a) => a.name === n));
}

function record(name: string, routes: string[]): AgentRecord {
  return { name, certSerial: '01', certExpiresAt: 0, labels: {}, createdAt: 0, meta: { routes }, lastSeen: null } as unknown as AgentRecord;
}

function grant(id: string, g: Partial<GrantRecord>): GrantRecord {
  return { id, subjectKind: 'user', subject: 'ana', agent: null, host: null, ports: null, cluster: null, kubeGroups: [], createdAt: 0, createdBy: 'admin', ...g };
}

const ana: Principal = { user: 'ana', groups: ['ops'], via: 'token' };
const admin: Principal = { user: 'admin', groups: ['warren:admins'], via: 'token' };

// Fleet: gw1 and gw2 advertise 10.20.0.0/16 (gw2 is down), wide advertises 10.0.0.0/8, node1 is down.
const agents = [record('gw1', ['10.20.0.0/16']), record('gw2', ['10.20.0.0/16']), record('wide', ['10.0.0.0/8']), record('node1', [])];
const up = live([{ name: 'gw1', routes: ['10.20.0.0/16'], streamsOpen: 3 }, { name: 'wide', routes: ['10.0.0.0/8'] }], ['gw1', 'gw2', 'wide', 'node1']);

test('rule 3: the survivor serves, the dead twin is listed as not connected, the grant is named', () => {
  const grants = [grant('g_ops', { subjectKind: 'group', subject: 'ops', agent: 'gw*', host: '10.20.0.0/16', ports: '8080' })];
  const e = explainRoute({ target: '10.20.1.2:8080', principal: ana, groupsFrom: 'caller', live: up, agents, grants });
  assert.equal(e.rule, 3);
  assert.equal(e.route, '10.20.0.0/16');
  assert.equal(e.agent, 'gw1');
  assert.equal(e.allowed, true);
  assert.equal(e.refusal, null);
  assert.deepEqual(
    e.candidates.map((c) => [c.agent, c.connected, c.route, c.selected, c.allowed]),
    [
      ['gw1', true, '10.20.0.0/16', true, true],
      ['gw2', false, '10.20.0.0/16', false, true],
      ['wide', true, '10.0.0.0/8', false, false],
    ],
  );
  assert.equal(e.grantText, 'grant g_ops (group:ops agent=gw* host=10.20.0.0/16 ports=8080)');
});

test('no grant: the router still picks an agent, but the next connection is refused as forbidden', () => {
  const e = explainRoute({ target: '10.20.1.2:22', principal: ana, groupsFrom: 'caller', live: up, agents, grants: [grant('g1', { agent: 'gw1', ports: '8080' })] });
  assert.equal(e.rule, 3);
  assert.equal(e.agent, null);
  assert.equal(e.allowed, false);
  assert.equal(e.grant, null);
  assert.equal(e.grantText, 'no grant');
  assert.equal(e.refusal?.code, 'WARREN_E_FORBIDDEN');
});

test('admins reach everything', () => {
  const e = explainRoute({ target: '10.99.0.1:443', principal: admin, groupsFrom: 'caller', live: up, agents, grants: [] });
  assert.equal(e.agent, 'wide');
  assert.equal(e.grant, 'admin');
});

test('rules 1 and 2 with an offline agent: the rule that matched, and WARREN_E_AGENT_OFFLINE', () => {
  const grants = [grant('g_n', { agent: 'node1' })];
  const r2 = explainRoute({ target: 'node1:22', principal: ana, groupsFrom: 'caller', live: up, agents, grants });
  assert.equal(r2.rule, 2);
  assert.equal(r2.dialHost, 'localhost');
  assert.equal(r2.refusal?.code, 'WARREN_E_AGENT_OFFLINE');
  assert.deepEqual(r2.candidates.map((c) => [c.agent, c.connected, c.allowed]), [['node1', false, true]]);
  assert.equal(r2.allowed, true, 'granted, though nobody can serve it right now');

  const r1 = explainRoute({ target: 'db.prod.node1.warren:5432', principal: ana, groupsFrom: 'caller', live: up, agents, grants });
  assert.equal(r1.rule, 1);
  assert.equal(r1.dialHost, 'db.prod');
  assert.equal(r1.refusal?.code, 'WARREN_E_AGENT_OFFLINE');

  const unknown = explainRoute({ target: 'x.nobody.warren:1', principal: ana, groupsFrom: 'caller', live: up, agents, grants });
  assert.equal(unknown.rule, 1);
  assert.equal(unknown.refusal?.code, 'WARREN_E_UNKNOWN_TARGET');
});

test('rule 4: nothing covers the host, or only agents that are down do', () => {
  const none = explainRoute({ target: '192.168.1.1:80', principal: ana, groupsFrom: 'caller', live: up, agents, grants: [] });
  assert.equal(none.rule, 4);
  assert.equal(none.refusal?.code, 'WARREN_E_UNKNOWN_TARGET');
  assert.deepEqual(none.candidates, []);

  const onlyDead = live([], ['gw1', 'gw2']);
  const e = explainRoute({ target: '10.20.1.2:80', principal: admin, groupsFrom: 'caller', live: onlyDead, agents: agents.slice(0, 2), grants: [] });
  assert.equal(e.rule, 4);
  assert.equal(e.refusal?.code, 'WARREN_E_UNKNOWN_TARGET');
  assert.deepEqual(e.candidates.map((c) => [c.agent, c.connected]), [['gw1', false], ['gw2', false]]);
});

test('a malformed target is WARREN_E_BAD_TARGET', () => {
  assert.throws(() => explainRoute({ target: 'nope', principal: ana, groupsFrom: 'caller', live: up, agents, grants: [] }), /BAD_TARGET|not HOST:PORT/);
});

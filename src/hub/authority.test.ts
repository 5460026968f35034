import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimRefusal, describeAuthority, nameAllowed, nameRefusal, routeWithin } from './authority.js';

test('routeWithin: a claim is allowed only inside an allowed route', () => {
  const table: Array<[claim: string, allowed: string, within: boolean]> = [
    ['10.1.0.0/16', '10.1.0.0/16', true],
    ['10.1.2.0/24', '10.1.0.0/16', true],
    ['10.1.2.3/32', '10.1.0.0/16', true],
    ['10.2.0.0/16', '10.1.0.0/16', false],
    ['10.0.0.0/8', '10.1.0.0/16', false], // wider than allowed
    ['10.1.2.3/32', '10.1.2.0/24', true],
    ['10.1.3.0/24', '10.1.2.0/24', false],
    ['0.0.0.0/0', '10.0.0.0/8', false],
    ['192.168.1.0/24', '0.0.0.0/0', true],
    ['10.1.255.0/8', '10.1.0.0/16', false], // host bits set, prefix still wider
    ['fd00:1::/32', 'fd00::/16', true],
    ['fd01::/16', 'fd00::/16', false],
    ['fd00::1/128', 'fd00::/120', true],
    ['::ffff:10.1.2.3/128', '10.1.0.0/16', false], // families never mix
    ['10.1.2.0/24', 'fd00::/8', false],
    ['.corp.internal', '.corp.internal', true],
    ['.db.corp.internal', '.corp.internal', true],
    ['.DB.Corp.Internal', '.corp.internal', true],
    ['.internal', '.corp.internal', false],
    ['.evilcorp.internal', '.corp.internal', false], // a suffix, not a string suffix
    ['.corp.internal', '10.0.0.0/8', false],
    ['10.1.0.0/16', '.corp.internal', false],
  ];
  for (const [claim, allowed, within] of table) assert.equal(routeWithin(claim, allowed), within, `${claim} within ${allowed}`);
});

test('nameAllowed: a fixed name, a glob, or any name', () => {
  assert.equal(nameAllowed({ clusters: [], routes: [] }, 'anything'), true);
  assert.equal(nameAllowed({ name: 'node7', clusters: [], routes: [] }, 'node7'), true);
  assert.equal(nameAllowed({ name: 'node7', clusters: [], routes: [] }, 'node8'), false);
  assert.equal(nameAllowed({ namePattern: 'dev-*', clusters: [], routes: [] }, 'dev-1'), true);
  assert.equal(nameAllowed({ namePattern: 'dev-*', clusters: [], routes: [] }, 'prod-1'), false);
  assert.equal(nameAllowed({ namePattern: 'dev-*', clusters: [], routes: [] }, 'xdev-1'), false);
});

test('nameRefusal names the name, what the token allows, and the flag', () => {
  const e = nameRefusal({ namePattern: 'dev-*', clusters: [], routes: [] }, 'prod-1');
  assert.equal(e?.code, 'WARREN_E_AGENT_CLAIM_DENIED');
  assert.match(e.message, /agent name "prod-1" is not allowed by this join token \(it allows only names matching "dev-\*"\)/);
  assert.match(e.message, /warren join-token create --name prod-1/);
  assert.equal(nameRefusal({ namePattern: 'dev-*', clusters: [], routes: [] }, 'dev-1'), undefined);
});

test('claimRefusal: clusters and routes outside the authority are refused with one line naming the claim and the flag', () => {
  const none = { clusters: [], routes: [] };
  assert.equal(claimRefusal('a', none, { clusters: [], routes: [] }), undefined);
  const cluster = claimRefusal('x', none, { clusters: ['prod'], routes: [] });
  assert.equal(cluster?.code, 'WARREN_E_AGENT_CLAIM_DENIED');
  assert.equal(cluster?.status, 403);
  assert.equal(cluster?.message, 'agent "x" may not serve cluster "prod": its join token does not allow it (create one with warren join-token create --clusters prod)');
  const route = claimRefusal('gw', { clusters: ['prod'], routes: ['10.1.0.0/16'] }, { clusters: ['prod'], routes: ['10.1.2.0/24', '10.2.0.0/16'] });
  assert.equal(route?.message, 'agent "gw" may not serve route "10.2.0.0/16": its join token does not allow it (create one with warren join-token create --clusters prod --routes 10.1.2.0/24,10.2.0.0/16)');
  assert.ok(!route.message.includes('\n'));
  assert.equal(claimRefusal('gw', { clusters: ['prod', 'dev'], routes: ['10.0.0.0/8', '.corp.internal'] }, { clusters: ['dev'], routes: ['10.9.0.0/16', '.db.corp.internal'] }), undefined);
});

test('claimRefusal: a gateway\'s source addresses must each be named by its join token', () => {
  const gw = { clusters: [], routes: [], sourceIps: ['10.9.0.5', '10.9.0.6'] };
  assert.equal(claimRefusal('gw', gw, { clusters: [], routes: [], sourceIps: ['10.9.0.6'] }), undefined);
  assert.equal(claimRefusal('gw', { clusters: [], routes: [] }, { clusters: [], routes: [] }), undefined, 'an agent without --source-ip claims none');
  const refused = claimRefusal('gw', gw, { clusters: [], routes: [], sourceIps: ['10.9.0.5', '10.9.0.7'] });
  assert.equal(refused?.code, 'WARREN_E_AGENT_CLAIM_DENIED');
  assert.equal(refused?.message, 'agent "gw" may not use source address 10.9.0.7: its join token does not allow it (create one with warren join-token create --source-ips 10.9.0.5,10.9.0.7)');
  assert.equal(refused?.details?.claim, 'source-ip 10.9.0.7');
  const old = claimRefusal('gw', { clusters: [], routes: [] }, { clusters: [], routes: [], sourceIps: ['10.9.0.5'] });
  assert.equal(old?.code, 'WARREN_E_AGENT_CLAIM_DENIED', 'a record from before source addresses allows none');
});

test('describeAuthority: one line for listings and audit rows', () => {
  assert.equal(describeAuthority({ clusters: [], routes: [] }), 'name any free, clusters none, routes none');
  assert.equal(describeAuthority({ namePattern: 'dev-*', clusters: ['a', 'b'], routes: ['10.0.0.0/8'] }), 'name dev-*, clusters a,b, routes 10.0.0.0/8');
  assert.equal(describeAuthority({ name: 'gw', clusters: [], routes: [], sourceIps: ['10.9.0.5'] }), 'name gw, clusters none, routes none, source IPs 10.9.0.5');
});

/**
 * Self-service through the API, in process: a non-admin sees exactly what their grants reach (agents
 * with live status, hosts, ports, clusters), their own audit rows and route explanations, and nothing
 * of other users; asking about another user is 403. An admin sees everyone's.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import { test } from 'node:test';
import { inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import type { Principal } from '../doors/door.js';

const lab = await inProcessHub();
await lab.agent('site-1', { route: '10.61.0.0/16' });
await lab.agent('site-2');
await lab.agent('db-1', { cluster: 'prod' });
const gAna = await lab.grant({ subjectKind: 'user', subject: 'ana', agent: 'site-*', ports: '22' });
const gDev = await lab.grant({ subjectKind: 'group', subject: 'dev', cluster: 'prod', kubeGroups: ['view'] });
const gBob = await lab.grant({ subjectKind: 'user', subject: 'bob', agent: 'db-1', host: '10.9.0.0/16' });
const ana = await lab.token('ana', ['dev']);
const bob = await lab.token('bob', ['ops']);
const admin = lab.adminToken;

function assertForbidden(r: { status: number; body: { code: string; message: string } }, field: string): void {
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.code, 'WARREN_E_FORBIDDEN');
  assert.match(r.body.message, /only admins|ask an admin/);
  assert.equal((r.body as unknown as { field: string }).field, field);
}

test('GET /api/v1/me: user, groups, the token and when it expires, the hub', async () => {
  const me = await lab.request('GET', '/api/v1/me', { token: ana.token });
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.deepEqual([me.body.user, me.body.groups, me.body.admin, me.body.via, me.body.tokenId], ['ana', ['dev'], false, 'token', ana.id]);
  const left = Date.parse(me.body.expiresAt) - Date.now();
  assert.ok(left > 0 && left <= 600_000, me.body.expiresAt);
  assert.deepEqual(me.body.hub, { url: lab.hub.url, version: me.body.hub.version, caFingerprint: lab.hub.caPin });
});

test('a non-admin sees exactly what their grants reach, with live status, and nothing of other users', async () => {
  const r = await lab.request('GET', '/api/v1/me/access', { token: ana.token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const a = r.body;
  assert.deepEqual([a.user, a.groups, a.groupsFrom, a.admin], ['ana', ['dev'], 'caller', false]);
  assert.deepEqual(a.targets.map((t: Record<string, unknown>) => [t.agent, t.connected, t.hosts, t.ports, t.grant]), [
    ['site-1', true, '*', '22', gAna.id],
    ['site-2', true, '*', '22', gAna.id],
  ]);
  assert.deepEqual(a.targets[0].routes, ['10.61.0.0/16']);
  for (const t of a.targets) assert.ok(t.rttMs === null || t.rttMs >= 0, String(t.rttMs));
  assert.deepEqual(a.clusters.map((c: Record<string, unknown>) => [c.name, c.connected, c.kubeGroups]), [['prod', true, ['view']]]);
  assert.deepEqual(a.grants.map((g: { id: string }) => g.id).sort(), [gAna.id, gDev.id].sort());
  const text = JSON.stringify(a);
  for (const other of ['bob', gBob.id, '10.9.0.0/16', 'ops']) assert.ok(!text.includes(other), `ana's access mentions ${other}: ${text}`);
});

test('a non-admin asking about another user or a group they are not in gets 403 WARREN_E_FORBIDDEN', async () => {
  assertForbidden(await lab.request('GET', '/api/v1/me/access?user=bob', { token: ana.token }), 'user');
  assertForbidden(await lab.request('GET', '/api/v1/me/access?groups=ops', { token: ana.token }), 'groups');
  assertForbidden(await lab.request('GET', '/api/v1/routes/explain?target=db-1:22&user=bob', { token: ana.token }), 'user');
  assertForbidden(await lab.request('GET', '/api/v1/audit?user=bob', { token: ana.token }), 'user');
  assertForbidden(await lab.request('GET', '/api/v1/clusters?user=bob', { token: ana.token }), 'user');
  // Naming oneself is fine.
  assert.equal((await lab.request('GET', '/api/v1/me/access?user=ana', { token: ana.token })).status, 200);
});

test('route explain judges the caller: allowed through their grant, denied elsewhere', async () => {
  const ok = await lab.request('GET', '/api/v1/routes/explain?target=site-1:22', { token: ana.token });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual([ok.body.user, ok.body.agent, ok.body.allowed, ok.body.grant.id], ['ana', 'site-1', true, gAna.id]);
  const no = await lab.request('GET', '/api/v1/routes/explain?target=db-1:22', { token: ana.token });
  assert.deepEqual([no.body.allowed, no.body.grantText, no.body.refusal.code], [false, 'no grant', 'WARREN_E_FORBIDDEN']);
});

test("audit: a non-admin sees only their own rows; an admin sees everyone's", async () => {
  const as = (user: string, groups: string[]): Principal => ({ user, groups, via: 'token' });
  // Two denials, written before open() rejects.
  await assert.rejects(lab.hub.opener.open({ target: 'db-1:22', principal: as('ana', ['dev']), door: 'connect', source: 'test' }), /no grant/);
  await assert.rejects(lab.hub.opener.open({ target: 'site-1:22', principal: as('bob', ['ops']), door: 'connect', source: 'test' }), /no grant/);
  const mine = await lab.request('GET', '/api/v1/audit', { token: ana.token });
  assert.equal(mine.status, 200, JSON.stringify(mine.body));
  assert.ok(mine.body.some((r: Record<string, unknown>) => r.target === 'db-1:22' && r.result === 'denied'), JSON.stringify(mine.body));
  assert.deepEqual([...new Set(mine.body.map((r: { user: string }) => r.user))], ['ana']);
  const all = await lab.request('GET', '/api/v1/audit?kind=stream', { token: admin });
  assert.deepEqual([...new Set(all.body.map((r: { user: string }) => r.user))].sort(), ['ana', 'bob']);
  const bobs = await lab.request('GET', '/api/v1/audit?user=bob', { token: admin });
  assert.deepEqual(bobs.body.map((r: { target: string }) => r.target), ['site-1:22']);
});

test("an admin sees every agent, and anyone's access", async () => {
  const mine = await lab.request('GET', '/api/v1/me/access', { token: admin });
  assert.deepEqual(mine.body.targets.map((t: Record<string, unknown>) => [t.agent, t.grant]), [['db-1', 'admin'], ['site-1', 'admin'], ['site-2', 'admin']]);
  const bobs = await lab.request('GET', '/api/v1/me/access?user=bob', { token: admin });
  assert.deepEqual([bobs.body.user, bobs.body.groups, bobs.body.groupsFrom], ['bob', ['ops'], 'tokens']);
  assert.deepEqual(bobs.body.targets.map((t: Record<string, unknown>) => [t.agent, t.hosts, t.ports, t.grant]), [['db-1', '10.9.0.0/16', '*', gBob.id]]);
  assert.deepEqual(bobs.body.clusters, []);
  const viaBob = await lab.request('GET', '/api/v1/me/access', { token: bob.token });
  const rows = (b: { targets: Array<Record<string, unknown>> }) => b.targets.map((t) => [t.agent, t.connected, t.hosts, t.ports, t.grant, t.routes]);
  assert.deepEqual(rows(viaBob.body), rows(bobs.body));
  assert.deepEqual(Object.keys(viaBob.body.targets[0]).sort(), ['agent', 'connected', 'grant', 'hosts', 'labels', 'lastSeen', 'ports', 'routes', 'rttMs', 'version'], 'no agent internals (authority, addresses) in a user row');
});

test("audit --follow: a non-admin's live rows are their own, not the rows written between them", async () => {
  const as = (user: string, groups: string[]): Principal => ({ user, groups, via: 'token' });
  const lines: Array<{ user: string; target: string }> = [];
  let req: ReturnType<typeof https.get> | undefined;
  const sawOwn = new Promise<void>((resolve, reject) => {
    req = https.get(`${lab.hub.url}/api/v1/audit?follow=true&kind=stream`, { ca: fs.readFileSync(lab.hub.caPath), headers: { authorization: `Bearer ${ana.token}` } }, (res) => {
      assert.equal(res.statusCode, 200);
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
          lines.push(JSON.parse(text.slice(0, nl)));
          text = text.slice(nl + 1);
          if (lines.at(-1)!.target === 'db-1:23') resolve();
        }
      });
      // Once the follower is subscribed (its head is sent), bob's row is written first, then ana's.
      void (async () => {
        await assert.rejects(lab.hub.opener.open({ target: 'site-2:22', principal: as('bob', ['ops']), door: 'connect', source: 'test' }));
        await assert.rejects(lab.hub.opener.open({ target: 'db-1:23', principal: as('ana', ['dev']), door: 'connect', source: 'test' }));
      })().catch(reject);
    });
    req.on('error', reject);
  });
  try {
    await withDeadline(sawOwn, 10_000, "ana's own row on her audit follow");
  } finally {
    req?.destroy();
  }
  assert.deepEqual([...new Set(lines.map((l) => l.user))], ['ana'], JSON.stringify(lines));
});

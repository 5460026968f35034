import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal } from '../doors/door.js';
import { groupsOfUser, judgedIdentity } from './judgedIdentity.js';

const now = Date.now();
const tokens = [
  { user: 'ana', groups: ['ops'], revokedAt: null, expiresAt: null },
  { user: 'ana', groups: ['dev', 'ops'], revokedAt: null, expiresAt: now + 60_000 },
  { user: 'ana', groups: ['root'], revokedAt: 5, expiresAt: null },
  { user: 'ana', groups: ['old'], revokedAt: null, expiresAt: now - 1 },
  { user: 'bob', groups: ['bob'], revokedAt: null, expiresAt: null },
];
const store = { listAccessTokens: async () => tokens };
const ana: Principal = { user: 'ana', groups: ['dev', 'ops'], via: 'token' };
const admin: Principal = { user: 'admin', groups: ['warren:admins'], via: 'token' };

test("groupsOfUser: the union over the user's live tokens", () => {
  assert.deepEqual(groupsOfUser(tokens, 'ana', now), ['dev', 'ops']);
  assert.deepEqual(groupsOfUser(tokens, 'zed', now), []);
});

test('a non-admin is judged as themselves, and may narrow their own groups', async () => {
  assert.deepEqual(await judgedIdentity(ana, {}, 'audit rows', store), { principal: ana, groupsFrom: 'caller' });
  assert.deepEqual(await judgedIdentity(ana, { user: 'ana' }, 'audit rows', store), { principal: ana, groupsFrom: 'caller' });
  assert.deepEqual((await judgedIdentity(ana, { groups: 'dev' }, 'access', store)).principal.groups, ['dev']);
});

test('a non-admin asking about another user or a group they are not in is 403 WARREN_E_FORBIDDEN', async () => {
  await assert.rejects(judgedIdentity(ana, { user: 'bob' }, 'audit rows', store), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'WARREN_E_FORBIDDEN');
    assert.match(e.message, /may see only their own audit rows; only admins .* user "bob"/);
    return true;
  });
  await assert.rejects(judgedIdentity(ana, { groups: 'dev,warren:admins' }, 'access', store), /not in group warren:admins/);
});

test('an admin may judge anyone: groups as given, else from their live tokens', async () => {
  assert.deepEqual(await judgedIdentity(admin, { user: 'ana' }, 'access', store), { principal: { user: 'ana', groups: ['dev', 'ops'], via: 'token' }, groupsFrom: 'tokens' });
  assert.deepEqual(await judgedIdentity(admin, { user: 'ana', groups: 'x' }, 'access', store), { principal: { user: 'ana', groups: ['x'], via: 'token' }, groupsFrom: 'flag' });
  assert.deepEqual((await judgedIdentity(admin, { groups: '' }, 'access', store)).principal.groups, [], 'an admin may drop their own groups to see as a plain user');
});

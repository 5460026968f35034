import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from './sqliteStore.js';

function tmp(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-store-')), 'w.db');
}

const token = { id: 't1', secretHash: Buffer.from('h'), expiresAt: Date.now() + 60_000, maxUses: 2, used: 0, labels: { a: 'b' }, createdAt: 0, createdBy: 'admin' };

test('migrations are versioned and idempotent across reopen', async () => {
  const file = tmp();
  const s = new SqliteStore(file);
  await s.createJoinToken(token);
  await s.close();
  const again = new SqliteStore(file);
  assert.equal((await again.listJoinTokens()).length, 1);
  await again.close();
  const raw = new Database(file);
  assert.equal(raw.pragma('user_version', { simple: true }), 1);
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(() => new SqliteStore(file), /newer than this Warren/);
});

test('join tokens are consumed atomically: uses, expiry, secret', async () => {
  const s = new SqliteStore(tmp());
  await s.createJoinToken(token);
  const yes = () => true;
  assert.equal((await s.consumeJoinToken('t1', Date.now(), () => false)).ok, false);
  assert.equal((await s.consumeJoinToken('t1', Date.now(), yes)).ok, true);
  assert.equal((await s.consumeJoinToken('t1', Date.now(), yes)).ok, true);
  assert.deepEqual(await s.consumeJoinToken('t1', Date.now(), yes), { ok: false, why: 'used-up' });
  await s.createJoinToken({ ...token, id: 't2', expiresAt: Date.now() - 1 });
  assert.deepEqual(await s.consumeJoinToken('t2', Date.now(), yes), { ok: false, why: 'expired' });
  assert.deepEqual(await s.consumeJoinToken('nope', Date.now(), yes), { ok: false, why: 'unknown' });
});

test('agents: a name is taken once; certificate swaps are compare-and-set', async () => {
  const s = new SqliteStore(tmp());
  const a = { name: 'n1', certSerial: 'aa', certExpiresAt: 1, labels: {}, createdAt: 0, meta: {}, lastSeen: null };
  assert.ok(await s.putAgent(a, false));
  assert.ok(!(await s.putAgent({ ...a, certSerial: 'bb' }, false)));
  assert.ok(!(await s.updateAgentCert('n1', 'zz', 'cc', 2)));
  assert.ok(await s.updateAgentCert('n1', 'aa', 'cc', 2));
  assert.equal((await s.getAgent('n1'))?.certSerial, 'cc');
  assert.ok(await s.deleteAgent('n1'));
  assert.equal(await s.getAgent('n1'), undefined);
});

test('audit rows are appended and filtered', async () => {
  const s = new SqliteStore(tmp());
  const base = { kind: 'stream' as const, door: 'connect', target: 'x:1', result: 'ok' as const, reason: null, bytesIn: 1, bytesOut: 2, durationMs: 3, source: null };
  await s.appendAudit({ ...base, time: 1000, user: 'ana', agent: 'a1' });
  await s.appendAudit({ ...base, time: 2000, user: 'bob', agent: 'a2' });
  assert.deepEqual((await s.queryAudit({ user: 'bob' })).map((r) => r.agent), ['a2']);
  assert.deepEqual((await s.queryAudit({ since: 1500 })).map((r) => r.user), ['bob']);
  assert.equal((await s.queryAudit({ agent: 'a1', kind: 'stream' })).length, 1);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION, SqliteStore } from './sqliteStore.js';

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
  assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
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
  const ids = await s.appendAudit([{ ...base, time: 1000, user: 'ana', agent: 'a1' }, { ...base, time: 2000, user: 'bob', agent: 'a2' }]);
  assert.deepEqual(ids, [1, 2]);
  assert.deepEqual(await s.appendAudit([{ ...base, time: 3000, user: 'cy', agent: 'a3' }]), [3]);
  assert.deepEqual((await s.queryAudit({ user: 'bob' })).map((r) => r.agent), ['a2']);
  assert.deepEqual((await s.queryAudit({ since: 1500 })).map((r) => r.user), ['bob', 'cy']);
  assert.equal((await s.queryAudit({ agent: 'a1', kind: 'stream' })).length, 1);
  // A batch is one transaction: a bad row leaves none of its batch behind.
  await assert.rejects(s.appendAudit([{ ...base, time: 4000, user: 'dee', agent: 'a4' }, { ...base, time: null as unknown as number, user: 'eve', agent: 'a5' }]));
  assert.deepEqual((await s.queryAudit({})).map((r) => r.user), ['ana', 'bob', 'cy']);
});

test('forwards: created once per name, port-0 entries remember their port, survive reopen', async () => {
  const file = tmp();
  const s = new SqliteStore(file);
  const f = { name: 'web', entryAgent: null, entryHost: '0.0.0.0', entryPort: 0, target: 'alpha:80', allowFrom: ['10.0.0.0/8'], createdAt: 1, createdBy: 'admin' };
  assert.equal(await s.createForward(f), true);
  assert.equal(await s.createForward({ ...f, target: 'beta:80' }), false);
  await s.createForward({ ...f, name: 'db', entryAgent: 'alpha', entryPort: 5432, allowFrom: [] });
  await s.updateForwardPort('web', 41000);
  await s.close();
  const again = new SqliteStore(file);
  assert.deepEqual(await again.listForwards(), [
    { ...f, name: 'db', entryAgent: 'alpha', entryPort: 5432, allowFrom: [] },
    { ...f, entryPort: 41000 },
  ]);
  assert.equal(await again.deleteForward('web'), true);
  assert.equal(await again.deleteForward('web'), false);
  await again.close();
});

test('a store at the first schema version gains the forwards table on open (append-only migrations)', async () => {
  const file = tmp();
  const raw = new Database(file);
  raw.exec(`CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL, user TEXT, door TEXT, agent TEXT,
     target TEXT, result TEXT NOT NULL, reason TEXT, bytes_in INTEGER, bytes_out INTEGER, duration_ms INTEGER, source TEXT)`);
  raw.pragma('user_version = 1');
  raw.close();
  const s = new SqliteStore(file);
  assert.deepEqual(await s.listForwards(), []);
  await s.close();
});

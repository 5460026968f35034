/** SQLite-only behaviour; the store contract is tested for both back ends in store.test.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from './migrations.js';
import { SqliteStore } from './sqliteStore.js';

function tmp(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-store-')), 'w.db');
}

test('the schema version is in user_version; a newer one than this Warren knows is refused', async () => {
  const file = tmp();
  await new SqliteStore(file).close();
  const raw = new Database(file);
  assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(() => new SqliteStore(file), /newer than this Warren/);
});
/** A store file as release 0.1.0 left it: the first schema's tables (with a token and an agent), at `version`. */
function oldStore(version: number): string {
  const file = tmp();
  const raw = new Database(file);
  raw.exec(`CREATE TABLE join_tokens (id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL, expires_at INTEGER NOT NULL, max_uses INTEGER,
     used INTEGER NOT NULL DEFAULT 0, labels TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
   CREATE TABLE agents (name TEXT PRIMARY KEY, cert_serial TEXT NOT NULL, cert_expires_at INTEGER NOT NULL, labels TEXT NOT NULL,
     created_at INTEGER NOT NULL, meta TEXT NOT NULL, last_seen INTEGER);
   CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL, user TEXT, door TEXT, agent TEXT,
     target TEXT, result TEXT NOT NULL, reason TEXT, bytes_in INTEGER, bytes_out INTEGER, duration_ms INTEGER, source TEXT);
   INSERT INTO join_tokens VALUES ('old', x'00', 1, NULL, 0, '{}', 0, 'admin');
   INSERT INTO agents VALUES ('legacy', 'aa', 1, '{}', 0, '{"clusters":["prod"]}', NULL);`);
  if (version >= 2) raw.exec('CREATE TABLE forwards (name TEXT PRIMARY KEY)');
  raw.pragma(`user_version = ${version}`);
  raw.close();
  return file;
}

test('a store at the first schema version gains the forwards table on open (append-only migrations)', async () => {
  const s = new SqliteStore(oldStore(1));
  assert.deepEqual(await s.listForwards(), []);
  await s.close();
});

test('tokens and agents from before agent authority get none: no clusters, no routes', async () => {
  const s = new SqliteStore(oldStore(2));
  assert.deepEqual((await s.getAgent('legacy'))?.authority, { clusters: [], routes: [] });
  assert.deepEqual((await s.getJoinToken('old'))?.authority, { clusters: [], routes: [] });
  await s.close();
});

test('the store file and its -wal and -shm are owner-only whatever the umask', async () => {
  const old = process.umask(0o022);
  try {
    const file = tmp();
    const s = new SqliteStore(file);
    await s.createJoinToken({
      id: 't1', secretHash: Buffer.from('h'), expiresAt: 1, maxUses: null, used: 0, labels: {}, authority: { clusters: [], routes: [] }, createdAt: 0, createdBy: 'admin',
    });
    for (const f of [file, `${file}-wal`, `${file}-shm`]) assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
    await s.close();
  } finally {
    process.umask(old);
  }
});

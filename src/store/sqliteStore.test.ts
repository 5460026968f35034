import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION, SqliteStore } from './sqliteStore.js';
import type { AgentRecord, JoinTokenRecord } from './store.js';

function tmp(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-store-')), 'w.db');
}

const token = {
  id: 't1', secretHash: Buffer.from('h'), expiresAt: Date.now() + 60_000, maxUses: 2, used: 0, labels: { a: 'b' },
  authority: { namePattern: 'n*', clusters: ['prod'], routes: ['10.1.0.0/16'] }, createdAt: 0, createdBy: 'admin',
};
const agent = (name: string, t: JoinTokenRecord): AgentRecord => ({
  name, certSerial: 'aa', certExpiresAt: 1, labels: t.labels, authority: t.authority, createdAt: 0, meta: {}, lastSeen: null,
});
const refuse = (why: string) => () => {
  throw new Error(why);
};

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

test('an enrollment counts a token use and records the agent with the token authority, in one transaction', async () => {
  const s = new SqliteStore(tmp());
  await s.createJoinToken(token);
  assert.deepEqual((await s.getJoinToken('t1'))?.authority, token.authority);
  let seen: JoinTokenRecord | undefined;
  assert.equal(await s.enrollAgent('t1', (t) => agent('n1', (seen = t)!)), true);
  assert.equal(seen?.used, 0);
  assert.deepEqual((await s.getAgent('n1'))?.authority, token.authority);
  assert.equal((await s.getJoinToken('t1'))?.used, 1);
  // A refusal from the check, or a name already taken, leaves the token's uses as they were.
  await assert.rejects(s.enrollAgent('t1', refuse('bad csr')), /bad csr/);
  assert.equal(await s.enrollAgent('t1', (t) => agent('n1', t!)), false);
  assert.equal((await s.getJoinToken('t1'))?.used, 1);
  await assert.rejects(s.enrollAgent('nope', (t) => (assert.equal(t, undefined), refuse('unknown')())), /unknown/);
});

test('agents: certificate swaps are compare-and-set', async () => {
  const s = new SqliteStore(tmp());
  await s.createJoinToken(token);
  assert.ok(await s.enrollAgent('t1', (t) => agent('n1', t!)));
  assert.ok(!(await s.updateAgentCert('n1', 'zz', 'cc', 2)));
  assert.ok(await s.updateAgentCert('n1', 'aa', 'cc', 2));
  assert.equal((await s.getAgent('n1'))?.certSerial, 'cc');
  assert.ok(await s.deleteAgent('n1'));
  assert.equal(await s.getAgent('n1'), undefined);
});

test('audit rows are appended and filtered', async () => {
  const s = new SqliteStore(tmp());
  const base = {
    kind: 'stream' as const, door: 'connect', target: 'x:1', result: 'ok' as const, reason: null, bytesIn: 1, bytesOut: 2, durationMs: 3, source: null,
    verb: null, resource: null, namespace: null, name: null, status: null,
  };
  const ids = await s.appendAudit([{ ...base, time: 1000, user: 'ana', agent: 'a1' }, { ...base, time: 2000, user: 'bob', agent: 'a2' }]);
  assert.deepEqual(ids, [1, 2]);
  assert.deepEqual(await s.appendAudit([{ ...base, time: 3000, user: 'cy', agent: 'a3' }]), [3]);
  assert.deepEqual((await s.queryAudit({ user: 'bob' })).map((r) => r.agent), ['a2']);
  assert.deepEqual((await s.queryAudit({ since: 1500 })).map((r) => r.user), ['bob', 'cy']);
  assert.equal((await s.queryAudit({ agent: 'a1', kind: 'stream' })).length, 1);
  // A batch is one transaction: a bad row leaves none of its batch behind.
  await assert.rejects(s.appendAudit([{ ...base, time: 4000, user: 'dee', agent: 'a4' }, { ...base, time: null as unknown as number, user: 'eve', agent: 'a5' }]));
  assert.deepEqual((await s.queryAudit({})).map((r) => r.user), ['ana', 'bob', 'cy']);
  // Regression: a limit kept the oldest rows, so `audit --follow` on a busy hub started its backlog far
  // behind the live edge and never printed the rows in between.
  assert.deepEqual((await s.queryAudit({ limit: 2 })).map((r) => r.user), ['bob', 'cy']);
  const [kube] = await s.appendAudit([{ ...base, kind: 'kube', time: 5000, user: 'dev', agent: 'a1', verb: 'list', resource: 'pods', namespace: 'team-a', name: null, status: 200 }]);
  const row = (await s.queryAudit({ kind: 'kube' }))[0]!;
  assert.deepEqual([row.id, row.verb, row.resource, row.namespace, row.name, row.status], [kube, 'list', 'pods', 'team-a', null, 200]);
});

test('forwards: created once per name, port-0 entries remember their port, survive reopen', async () => {
  const file = tmp();
  const s = new SqliteStore(file);
  const f = {
    name: 'web', entryAgent: null, entryHost: '0.0.0.0', entryPort: 0, target: 'alpha:80', allowFrom: ['10.0.0.0/8'], createdAt: 1, createdBy: 'admin',
    kind: 'forward' as const, gateway: null, sourceIp: null, owner: null,
  };
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

test('egress rules keep kind, gateway and source address; an ExternalService replaces its own rules all or nothing', async () => {
  const file = tmp();
  const s = new SqliteStore(file);
  const rule = (name: string, owner: string | null = null) => ({
    name, entryAgent: null, entryHost: '0.0.0.0', entryPort: 15432, target: '10.1.0.9:5432', allowFrom: [], createdAt: 1, createdBy: 'admin',
    kind: 'egress' as const, gateway: 'gw', sourceIp: '10.9.0.5', owner,
  });
  assert.equal(await s.createForward(rule('pg-a')), true);
  const svc = { name: 'db', manifest: { kind: 'ExternalService', spec: { targetIP: '10.1.0.9' } }, createdAt: 2, createdBy: 'admin' };
  await s.putExternalService(svc, 'externalservice/db', [rule('db-1'), rule('db-2')]);
  assert.deepEqual((await s.listForwards()).map((r) => [r.name, r.owner]), [['db-1', 'externalservice/db'], ['db-2', 'externalservice/db'], ['pg-a', null]]);
  // A name another owner holds: nothing changes, neither the service nor its rules.
  await assert.rejects(s.putExternalService({ ...svc, manifest: { changed: true } }, 'externalservice/db', [rule('db-3'), rule('pg-a')]));
  assert.deepEqual((await s.listForwards()).map((r) => r.name), ['db-1', 'db-2', 'pg-a']);
  assert.deepEqual(await s.listExternalServices(), [svc]);
  await s.putExternalService({ ...svc, createdAt: 3 }, 'externalservice/db', [rule('db-3')]);
  await s.close();
  const again = new SqliteStore(file);
  assert.deepEqual(await again.listForwards(), [rule('db-3', 'externalservice/db'), rule('pg-a')]);
  assert.equal(await again.deleteExternalService('db', 'externalservice/db'), true);
  assert.equal(await again.deleteExternalService('db', 'externalservice/db'), false);
  assert.deepEqual((await again.listForwards()).map((r) => r.name), ['pg-a']);
  assert.deepEqual(await again.listExternalServices(), []);
  await again.close();
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
    await s.createJoinToken(token);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
    await s.close();
  } finally {
    process.umask(old);
  }
});

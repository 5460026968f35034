import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Audit, type AuditEntry } from './audit.js';
import { SqliteStore } from '../store/sqliteStore.js';
import { silentLogger } from '../shared/log.js';
import type { AuditRow } from '../store/store.js';

const store = () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'warren-audit-')), 'store.db'));

test('rows recorded in one turn are written in one batch, in order, and resolve once stored', async () => {
  const s = store();
  const batches: number[] = [];
  const append = s.appendAudit.bind(s);
  s.appendAudit = (rows: readonly AuditRow[]) => (batches.push(rows.length), append(rows));
  const audit = new Audit(s, silentLogger);
  const seen: AuditEntry[] = [];
  audit.subscribe((r) => seen.push(r));
  const first = [1, 2, 3].map((i) => audit.record({ kind: 'stream', result: 'ok', user: `u${i}` }));
  assert.deepEqual(batches, [], 'nothing is written before the turn ends');
  await Promise.all(first);
  assert.deepEqual(batches, [3]);
  assert.deepEqual((await audit.query({})).map((r) => r.user), ['u1', 'u2', 'u3']);
  await audit.record({ kind: 'admin', result: 'ok', user: 'u4' });
  assert.deepEqual(batches, [3, 1]);
  assert.deepEqual(seen.map((r) => [r.id, r.user]), [[1, 'u1'], [2, 'u2'], [3, 'u3'], [4, 'u4']]);
});

test('drain waits for rows recorded while a batch is being written', async () => {
  const s = store();
  const audit = new Audit(s, silentLogger);
  void audit.record({ kind: 'stream', result: 'ok', user: 'a' });
  setImmediate(() => void audit.record({ kind: 'stream', result: 'ok', user: 'b' }));
  await new Promise((r) => setImmediate(r));
  await audit.drain();
  assert.deepEqual((await s.queryAudit({})).map((r) => r.user), ['a', 'b']);
});

test('a failing store is logged and the callers still go on', async () => {
  const s = store();
  const errors: unknown[] = [];
  const log = { ...silentLogger, error: (obj: unknown) => errors.push(obj) } as unknown as typeof silentLogger;
  s.appendAudit = () => Promise.reject(new Error('disk full'));
  const audit = new Audit(s, log);
  await Promise.all([audit.record({ kind: 'stream', result: 'ok' }), audit.record({ kind: 'agent', result: 'ok' })]);
  assert.equal(errors.length, 1);
  assert.match(JSON.stringify(errors[0]), /disk full/);
});

/**
 * Enrollment against a real SQLite store and CA: a join spends one use and names the agent; a taken
 * name or a bad CSR is refused before a use is spent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { createCa, createCsr, fingerprint, loadCa } from '../pki/pki.js';
import { SqliteStore } from '../store/sqliteStore.js';
import { Enrollment } from './enroll.js';

const caPair = await createCa('enroll test CA');
const store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'warren-enroll-')), 'store.db'));
const enrollment = new Enrollment({ store, ca: await loadCa(caPair), caPin: fingerprint(caPair.certPem), hubUrl: () => 'https://hub.test:8443', certTtlMs: 86_400_000 });

const token = (uses: number) =>
  enrollment.createJoinToken({ ttlMs: 60_000, uses, labels: { team: 'ops' }, authority: { namePattern: 'node-*', clusters: [], routes: [] }, createdBy: 'test' });
const usesLeft = async (id: string) => {
  const t = await store.getJoinToken(id);
  return t!.maxUses! - t!.used;
};
const refused = (code: string) => (err: unknown) => err instanceof WarrenError && err.code === code;

test('a join returns a certificate for the name, with the token’s labels winning over the agent’s, and spends one use', async () => {
  const created = await token(2);
  assert.match(created.command, /^WARREN_JOIN_TOKEN=\S+ warren agent$/);
  const { csrPem } = await createCsr('node-1');
  const joined = await enrollment.join({ token: created.token, name: 'node-1', csr: csrPem, labels: { team: 'mine', zone: 'a' } });
  assert.equal(joined.name, 'node-1');
  assert.equal(joined.caPem, caPair.certPem);
  assert.deepEqual(joined.labels, { team: 'ops', zone: 'a' });
  assert.equal((await store.getAgent('node-1'))?.name, 'node-1');
  assert.equal(await usesLeft(created.id), 1);
});

test('a taken name is refused and keeps the use', async () => {
  const created = await token(1);
  const { csrPem } = await createCsr('node-2');
  await enrollment.join({ token: created.token, name: 'node-2', csr: csrPem, labels: {} });
  const again = await token(1);
  await assert.rejects(enrollment.join({ token: again.token, name: 'node-2', csr: csrPem, labels: {} }), refused('WARREN_E_AGENT_NAME_TAKEN'));
  assert.equal(await usesLeft(again.id), 1);
});

test('a bad CSR is refused and keeps the use, so the same token then joins', async () => {
  const created = await token(1);
  await assert.rejects(enrollment.join({ token: created.token, name: 'node-3', csr: 'garbage', labels: {} }), refused('WARREN_E_BAD_REQUEST'));
  assert.equal(await usesLeft(created.id), 1);
  const { csrPem } = await createCsr('node-3');
  await enrollment.join({ token: created.token, name: 'node-3', csr: csrPem, labels: {} });
  assert.equal(await usesLeft(created.id), 0);
  const { csrPem: another } = await createCsr('node-4');
  await assert.rejects(enrollment.join({ token: created.token, name: 'node-4', csr: another, labels: {} }), refused('WARREN_E_JOIN_TOKEN_USED_UP'));
});

test('a name outside the token’s authority and a malformed token are refused', async () => {
  const created = await token(1);
  const { csrPem } = await createCsr('db-1');
  await assert.rejects(enrollment.join({ token: created.token, name: 'db-1', csr: csrPem, labels: {} }), (err: unknown) => err instanceof WarrenError && /node-\*/.test(err.message));
  await assert.rejects(enrollment.join({ token: 'nonsense', name: 'node-9', csr: csrPem, labels: {} }), refused('WARREN_E_JOIN_TOKEN_INVALID'));
  assert.equal(await usesLeft(created.id), 1);
});

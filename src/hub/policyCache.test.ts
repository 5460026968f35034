import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConnectRefused, connectThroughHub, readAll } from '../../test/support/connectClient.js';
import { echoServer, inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import { sha256Hex } from '../../test/support/upstreams.js';
import { SqliteStore } from '../store/sqliteStore.js';
import type { GrantRecord } from '../store/store.js';
import { PolicyCache } from './policyCache.js';

const lab = await inProcessHub();
const echoPort = await echoServer();
await lab.agent('site1');
const hubAddress = { url: lab.hub.url, caPath: lab.hub.caPath, adminToken: lab.adminToken };

/** `warren_store_queries_total` by method, as /metrics would show it. */
async function queries(): Promise<Map<string, number>> {
  const { values } = await lab.hub.metrics.storeQueries.get();
  return new Map(values.map((v) => [String(v.labels.op), v.value]));
}

function added(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of after) if (n !== (before.get(op) ?? 0)) out[op] = n - (before.get(op) ?? 0);
  return out;
}

/** One CONNECT stream to the echo server as `token`: sends a line, half-closes, checks the echo. */
async function echoStream(token: string, text: string): Promise<void> {
  const socket = await connectThroughHub(hubAddress, `site1:${echoPort}`, { token });
  const back = readAll(socket);
  socket.resume();
  socket.end(text);
  const r = await withDeadline(back, 10_000, 'the echo through the hub');
  assert.equal(r.sha256, sha256Hex(text));
}

async function refusedWith(token: string, status: number): Promise<void> {
  await assert.rejects(connectThroughHub(hubAddress, `site1:${echoPort}`, { token }), (err) => err instanceof ConnectRefused && err.status === status);
}

test('opening streams reads nothing from the store: the token and the grants come from memory (only audit rows are written)', async () => {
  const dee = await lab.token('dee');
  await lab.grant({ subjectKind: 'user', subject: 'dee', agent: 'site1', ports: String(echoPort) });
  await echoStream(dee.token, 'warm-up');
  const before = await queries();
  await Promise.all(Array.from({ length: 20 }, (_, i) => echoStream(dee.token, `stream ${i}`)));
  const writes = added(before, await queries());
  assert.deepEqual(Object.keys(writes).filter((op) => op !== 'appendAudit'), [], `store calls for 20 streams: ${JSON.stringify(writes)}`);
  assert.ok((writes.appendAudit ?? 0) <= 20, `audit rows are written in batches: ${JSON.stringify(writes)}`);
});

test('a token revoked or a grant deleted through the API is refused on the very next stream', async () => {
  const eve = await lab.token('eve');
  const grant = await lab.grant({ subjectKind: 'user', subject: 'eve', agent: 'site1', ports: String(echoPort) });
  await echoStream(eve.token, 'allowed');
  const deleted = await lab.request('DELETE', `/api/v1/grants/${grant.id}`, { token: lab.adminToken });
  assert.equal(deleted.status, 200);
  await refusedWith(eve.token, 403);

  await lab.grant({ subjectKind: 'user', subject: 'eve', agent: 'site1', ports: String(echoPort) });
  await echoStream(eve.token, 'allowed again');
  const revoked = await lab.request('DELETE', `/api/v1/tokens/${eve.id}`, { token: lab.adminToken });
  assert.equal(revoked.status, 200);
  await refusedWith(eve.token, 407);
});

test("another hub's write is seen after invalidate() (the change notification), and the writer tells the others", async () => {
  // Two caches on one database file: two hubs on one store.
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-policy-')), 'w.db');
  let told = 0;
  const one = new PolicyCache(new SqliteStore(file), () => told++);
  const two = new PolicyCache(new SqliteStore(file), () => undefined);
  try {
    const grant: GrantRecord = {
      id: 'g_1', subjectKind: 'user', subject: 'ana', agent: 'site1', host: null, ports: null, cluster: null, kubeGroups: [], createdAt: 1, createdBy: 'test',
    };
    assert.deepEqual(await two.store.listGrants(), []);
    await one.store.createGrant(grant);
    assert.equal(told, 1, 'a policy write is announced');
    assert.deepEqual((await one.store.listGrants()).map((g) => g.id), ['g_1'], 'the writer sees its own write at once');
    assert.deepEqual(await two.store.listGrants(), [], 'the other hub answers from memory until told');
    two.invalidate();
    assert.deepEqual((await two.store.listGrants()).map((g) => g.id), ['g_1']);

    await one.store.createAccessToken({ id: 't_1', user: 'ana', groups: [], expiresAt: null, createdAt: 1, createdBy: 'test', revokedAt: null });
    assert.equal((await two.store.getAccessToken('t_1'))?.revokedAt, null, 'an id not seen before is read from the store');
    await one.store.revokeAccessToken('t_1', 2);
    assert.equal((await two.store.getAccessToken('t_1'))?.revokedAt, null, 'then kept in memory');
    two.invalidate();
    assert.equal((await two.store.getAccessToken('t_1'))?.revokedAt, 2);
  } finally {
    await one.store.close();
    await two.store.close();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});

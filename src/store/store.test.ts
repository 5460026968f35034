/**
 * The store contract, run against both back ends: SQLite (a temp file) and PostgreSQL (a real server,
 * one fresh database per test). Dialect-only behaviour (file modes and old files; restarts, racing
 * hubs) is tested beside each store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildGroup } from '../../test/support/proc.js';
import { startPostgres, type Postgres } from '../../test/support/postgres.js';
import { silentLogger } from '../shared/log.js';
import { PostgresStore } from './postgresStore.js';
import { SqliteStore } from './sqliteStore.js';
import type { AgentRecord, JoinTokenRecord, Store } from './store.js';

const token: JoinTokenRecord = {
  id: 't1', secretHash: Buffer.from('h'), expiresAt: Date.now() + 60_000, maxUses: 2, used: 0, labels: { a: 'b' },
  authority: { namePattern: 'n*', clusters: ['prod'], routes: ['10.1.0.0/16'] }, createdAt: 0, createdBy: 'admin',
};
const agent = (name: string, t: JoinTokenRecord): AgentRecord => ({
  name, certSerial: 'aa', certExpiresAt: 1, labels: t.labels, authority: t.authority, createdAt: 0, meta: {}, lastSeen: null,
});
const refuse = (why: string) => () => {
  throw new Error(why);
};

interface Backend {
  /** A location for a new, empty store; `open` may be called on it more than once (reopen). */
  fresh(): Promise<() => Promise<Store>>;
}

const sqlite: Backend = {
  async fresh() {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-store-')), 'w.db');
    return async () => new SqliteStore(file);
  },
};

const group = new ChildGroup();
let pg: Postgres | undefined;
let databases = 0;
const postgres: Backend = {
  async fresh() {
    const db = `t${++databases}`;
    await pg!.psql(`CREATE DATABASE ${db} OWNER warren`);
    const url = pg!.url().replace(/\/warren$/, `/${db}`);
    return () => PostgresStore.open({ url }, silentLogger);
  },
};

before(async () => {
  pg = await startPostgres({ group });
});
after(async () => {
  await pg?.stop();
  group.dispose();
});

for (const [name, backend] of [['sqlite', sqlite], ['postgres', postgres]] as const) {
  describe(name, () => {
    const open = async (): Promise<Store> => (await backend.fresh())();
    const opened: Store[] = [];
    after(() => Promise.all(opened.map((s) => s.close().catch(() => {}))));
    const track = (s: Store) => (opened.push(s), s);

    test('migrations are applied once: a reopened store keeps its rows', async () => {
      const reopen = await backend.fresh();
      const s = await reopen();
      await s.createJoinToken(token);
      await s.close();
      const again = track(await reopen());
      assert.equal((await again.listJoinTokens()).length, 1);
    });

    test('an enrollment counts a token use and records the agent with the token authority, in one transaction', async () => {
      const s = track(await open());
      await s.createJoinToken(token);
      assert.deepEqual((await s.getJoinToken('t1'))?.authority, token.authority);
      assert.deepEqual((await s.getJoinToken('t1'))?.secretHash, token.secretHash);
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
      assert.equal(await s.deleteJoinToken('t1'), true);
      assert.equal(await s.deleteJoinToken('t1'), false);
    });

    test('enrollments racing one single-use token admit exactly one agent', async () => {
      const s = track(await open());
      await s.createJoinToken({ ...token, maxUses: 1 });
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          s.enrollAgent('t1', (t) => {
            if (!t || (t.maxUses !== null && t.used >= t.maxUses)) throw new Error('used up');
            return agent(`n${i}`, t);
          }),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled' && r.value).length, 1);
      assert.equal((await s.listAgents()).length, 1);
      assert.equal((await s.getJoinToken('t1'))?.used, 1);
    });

    test('agents: certificate swaps are compare-and-set; seen meta is kept', async () => {
      const s = track(await open());
      await s.createJoinToken(token);
      assert.ok(await s.enrollAgent('t1', (t) => agent('n1', t!)));
      assert.ok(!(await s.updateAgentCert('n1', 'zz', 'cc', 2)));
      assert.ok(await s.updateAgentCert('n1', 'aa', 'cc', 2));
      assert.equal((await s.getAgent('n1'))?.certSerial, 'cc');
      await s.updateAgentSeen('n1', { version: '1.2', routes: ['10.1.0.0/24'] }, 1234);
      const a = await s.getAgent('n1');
      assert.deepEqual([a?.meta, a?.lastSeen], [{ version: '1.2', routes: ['10.1.0.0/24'] }, 1234]);
      assert.deepEqual((await s.listAgents()).map((x) => x.name), ['n1']);
      assert.ok(await s.deleteAgent('n1'));
      assert.equal(await s.getAgent('n1'), undefined);
      assert.ok(!(await s.deleteAgent('n1')));
    });

    test('grants and access tokens round-trip; a token is revoked once', async () => {
      const s = track(await open());
      const g = { id: 'g1', subjectKind: 'group' as const, subject: 'dev', agent: 'prod-*', host: null, ports: '22', cluster: null, kubeGroups: ['view'], createdAt: 5, createdBy: 'admin' };
      await s.createGrant(g);
      await s.createGrant({ ...g, id: 'g2', agent: null, ports: null, cluster: 'c*', createdAt: 6 });
      assert.deepEqual(await s.listGrants(), [g, { ...g, id: 'g2', agent: null, ports: null, cluster: 'c*', createdAt: 6 }]);
      assert.ok(await s.deleteGrant('g1'));
      assert.ok(!(await s.deleteGrant('g1')));
      const t = { id: 'a1', user: 'ana', groups: ['dev'], expiresAt: null, createdAt: 7, createdBy: 'admin', revokedAt: null };
      await s.createAccessToken(t);
      assert.deepEqual(await s.getAccessToken('a1'), t);
      assert.ok(await s.revokeAccessToken('a1', 99));
      assert.ok(!(await s.revokeAccessToken('a1', 100)));
      assert.deepEqual(await s.listAccessTokens(), [{ ...t, revokedAt: 99 }]);
      assert.equal(await s.getAccessToken('nope'), undefined);
    });

    test('audit rows are appended and filtered', async () => {
      const s = track(await open());
      const base = {
        kind: 'stream' as const, door: 'connect', target: 'x:1', result: 'ok' as const, reason: null, bytesIn: 1, bytesOut: 2, durationMs: 3, source: null,
        verb: null, resource: null, namespace: null, name: null, status: null,
      };
      const ids = await s.appendAudit([{ ...base, time: 1000, user: 'ana', agent: 'a1' }, { ...base, time: 2000, user: 'bob', agent: 'a2' }]);
      assert.deepEqual(ids, [1, 2]);
      assert.deepEqual(await s.appendAudit([{ ...base, time: 3000, user: 'cy', agent: 'a3' }]), [3]);
      assert.deepEqual((await s.queryAudit({ user: 'bob' })).map((r) => r.agent), ['a2']);
      assert.deepEqual((await s.queryAudit({ since: 1500 })).map((r) => r.user), ['bob', 'cy']);
      assert.deepEqual((await s.queryAudit({ afterId: 2 })).map((r) => r.user), ['cy']);
      assert.equal((await s.queryAudit({ agent: 'a1', kind: 'stream' })).length, 1);
      // A batch is one transaction: a bad row leaves none of its batch behind.
      await assert.rejects(s.appendAudit([{ ...base, time: 4000, user: 'dee', agent: 'a4' }, { ...base, time: null as unknown as number, user: 'eve', agent: 'a5' }]));
      assert.deepEqual((await s.queryAudit({})).map((r) => r.user), ['ana', 'bob', 'cy']);
      // Regression: a limit kept the oldest rows, so `audit --follow` on a busy hub started its backlog far
      // behind the live edge and never printed the rows in between.
      assert.deepEqual((await s.queryAudit({ limit: 2 })).map((r) => r.user), ['bob', 'cy']);
      const [kube] = await s.appendAudit([{ ...base, kind: 'kube', time: 5000, user: 'dev', agent: 'a1', verb: 'list', resource: 'pods', namespace: 'team-a', name: null, status: 200 }]);
      const row = (await s.queryAudit({ kind: 'kube' }))[0]!;
      assert.deepEqual([row.id, row.verb, row.resource, row.namespace, row.name, row.status, row.bytesIn], [kube, 'list', 'pods', 'team-a', null, 200, 1]);
      // A large batch (PostgreSQL writes it in several multi-row INSERTs): every row's id is its own, in order.
      const many = Array.from({ length: 2_500 }, (_, i) => ({ ...base, time: 6000 + i, user: `u${i}`, agent: 'a9', bytesIn: i }));
      const manyIds = await s.appendAudit(many);
      assert.deepEqual(manyIds, Array.from({ length: 2_500 }, (_, i) => kube! + 1 + i));
      const back = await s.queryAudit({ agent: 'a9', limit: 5_000 });
      assert.deepEqual(back.map((r) => [r.id, r.user, r.bytesIn, r.time]), many.map((r, i) => [manyIds[i], r.user, r.bytesIn, r.time]));
    });

    test('forwards: created once per name, port-0 entries remember their port, survive reopen', async () => {
      const reopen = await backend.fresh();
      const s = await reopen();
      const f = {
        name: 'web', entryAgent: null, entryHost: '0.0.0.0', entryPort: 0, target: 'alpha:80', allowFrom: ['10.0.0.0/8'], createdAt: 1, createdBy: 'admin',
        kind: 'forward' as const, gateway: null, sourceIp: null, owner: null,
      };
      assert.equal(await s.createForward(f), true);
      assert.equal(await s.createForward({ ...f, target: 'beta:80' }), false);
      await s.createForward({ ...f, name: 'db', entryAgent: 'alpha', entryPort: 5432, allowFrom: [] });
      await s.updateForwardPort('web', 41000);
      await s.close();
      const again = track(await reopen());
      assert.deepEqual(await again.listForwards(), [
        { ...f, name: 'db', entryAgent: 'alpha', entryPort: 5432, allowFrom: [] },
        { ...f, entryPort: 41000 },
      ]);
      assert.equal(await again.deleteForward('web'), true);
      assert.equal(await again.deleteForward('web'), false);
    });

    test('egress rules keep kind, gateway and source address; an ExternalService replaces its own rules all or nothing', async () => {
      const reopen = await backend.fresh();
      const s = await reopen();
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
      const again = track(await reopen());
      assert.deepEqual(await again.listForwards(), [rule('db-3', 'externalservice/db'), rule('pg-a')]);
      assert.equal(await again.deleteExternalService('db', 'externalservice/db'), true);
      assert.equal(await again.deleteExternalService('db', 'externalservice/db'), false);
      assert.deepEqual((await again.listForwards()).map((r) => r.name), ['pg-a']);
      assert.deepEqual(await again.listExternalServices(), []);
    });

    test('hub leases: renewed rows stay alive, an expired one is not, removing a hub removes its agents\' presence', async () => {
      const s = track(await open());
      await s.renewHub({ id: 'h1', relayUrl: 'https://10.0.0.1:8443', startedAt: 1 }, 60_000);
      await s.renewHub({ id: 'h2', relayUrl: 'https://10.0.0.2:8443', startedAt: 2 }, -1);
      const hubs = await s.listHubs();
      assert.deepEqual(hubs.map((h) => [h.id, h.relayUrl, h.startedAt, h.alive]), [['h1', 'https://10.0.0.1:8443', 1, true], ['h2', 'https://10.0.0.2:8443', 2, false]]);
      assert.ok(hubs[0]!.leaseExpiresAt > Date.now() + 50_000);
      await s.renewHub({ id: 'h2', relayUrl: 'https://10.0.0.2:9443', startedAt: 2 }, 60_000);
      assert.deepEqual((await s.listHubs()).map((h) => [h.relayUrl, h.startedAt, h.alive]), [['https://10.0.0.1:8443', 1, true], ['https://10.0.0.2:9443', 2, true]]);

      await s.setPresence('alpha', 'h1', 10);
      await s.setPresence('beta', 'h2', 11);
      await s.setPresence('alpha', 'h2', 12);
      // A late disconnect from the hub the agent left must not erase where it is now.
      await s.clearPresence('alpha', 'h1');
      assert.deepEqual(await s.listPresence(), [{ agent: 'alpha', hub: 'h2', since: 12 }, { agent: 'beta', hub: 'h2', since: 11 }]);
      assert.deepEqual(await s.listPresence('beta'), [{ agent: 'beta', hub: 'h2', since: 11 }]);
      await s.removeHub('h2');
      assert.deepEqual(await s.listPresence(), []);
      assert.deepEqual((await s.listHubs()).map((h) => h.id), ['h1']);
    });
  });
}

/** PostgreSQL-only behaviour: hubs opening one database together, a database restart, redaction. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ChildGroup } from '../../test/support/proc.js';
import { startPostgres, type Postgres } from '../../test/support/postgres.js';
import { silentLogger } from '../shared/log.js';
import { SCHEMA_VERSION } from './migrations.js';
import { PostgresStore } from './postgresStore.js';
import { redactUrl } from './store.js';

const group = new ChildGroup();
let pg: Postgres;
before(async () => {
  pg = await startPostgres({ group });
});
after(async () => {
  await pg.stop();
  group.dispose();
});

const row = (i: number) => ({
  time: i, kind: 'stream' as const, user: 'ana', door: 'connect', agent: 'a', target: 'x:1', result: 'ok' as const, reason: null, bytesIn: 1, bytesOut: 1,
  durationMs: 1, source: null, verb: null, resource: null, namespace: null, name: null, status: null,
});

test('hubs opening one database at once apply each migration once (advisory lock)', async () => {
  const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open({ url: pg.url() }, silentLogger)));
  assert.equal(await pg.psql('SELECT version FROM warren_schema', 'warren'), String(SCHEMA_VERSION));
  await Promise.all(stores.map((s) => s.close()));
  await pg.psql('UPDATE warren_schema SET version = 99', 'warren');
  await assert.rejects(PostgresStore.open({ url: pg.url() }, silentLogger), /newer than this Warren/);
  await pg.psql(`UPDATE warren_schema SET version = ${SCHEMA_VERSION}`, 'warren');
});

test('a database restart: writes during it wait and succeed, the outage is logged once, nothing is lost', async (t) => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
  const s = await PostgresStore.open({ url: pg.url() }, log);
  // Closed whatever happens: an open pool would keep the test process alive after a failed assertion.
  t.after(() => s.close());
  const before = Number(await pg.psql('SELECT count(*) FROM audit', 'warren'));
  // Fill the pool with idle connections the restart will kill.
  await Promise.all(Array.from({ length: 10 }, (_, i) => s.appendAudit([row(i)])));
  let written = 0;
  let stop = false;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      await s.appendAudit([row(i)]);
      written++;
    }
  })();
  await pg.restart();
  const after = written;
  const deadline = Date.now() + 5_000;
  while (written < after + 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await writer;
  assert.ok(written >= after + 20, `writes resumed after the restart (${written - after} since)`);
  assert.equal(Number(await pg.psql('SELECT count(*) FROM audit', 'warren')), before + 10 + written);
  const outages = lines.filter((l) => l.includes('store connection lost'));
  assert.ok(outages.length >= 1 && outages.length <= 2, `outage logged ${outages.length} times`);
  assert.ok(lines.some((l) => l.includes('store reachable again')));
});

/**
 * A TCP hop to the database that, once armed, forwards the next client message holding the text
 * COMMIT and then closes both sides when the server starts to answer, without passing the answer on:
 * the server has committed, and the client has lost its connection before it knew.
 */
async function commitCutter(target: { host: string; port: number }) {
  const conns = new Set<net.Socket>();
  let armed = false;
  let cuts = 0;
  const server = net.createServer((client) => {
    const db = net.connect(target.port, target.host);
    conns.add(client).add(db);
    let cutOnAnswer = false;
    const end = () => (client.destroy(), db.destroy(), conns.delete(client), conns.delete(db));
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes('COMMIT')) [armed, cutOnAnswer] = [false, true];
      db.write(chunk);
    });
    db.on('data', (chunk: Buffer) => {
      if (!cutOnAnswer) return void client.write(chunk);
      cuts++;
      end();
    });
    client.on('error', end).on('close', end);
    db.on('error', end).on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    /** Drops every open connection (the pool's next statements then open fresh ones) and arms the cut. */
    arm: () => {
      for (const c of conns) c.destroy();
      armed = true;
    },
    get cuts() {
      return cuts;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('a connection lost while its COMMIT was on the way: the retry finds the transaction committed and does not apply it twice', async (t) => {
  const cutter = await commitCutter({ host: pg.host, port: pg.port });
  const url = new URL(pg.url());
  url.port = String(cutter.port);
  const s = await PostgresStore.open({ url: url.toString() }, silentLogger);
  t.after(async () => (await s.close(), await cutter.close()));
  const before = Number(await pg.psql('SELECT count(*) FROM audit', 'warren'));
  cutter.arm();
  const ids = await s.appendAudit([row(1), row(2)]);
  assert.equal(cutter.cuts, 1, 'the COMMIT was cut off');
  assert.equal(Number(await pg.psql('SELECT count(*) FROM audit', 'warren')), before + 2, 'the two rows are there once');
  assert.equal(await pg.psql(`SELECT count(*) FROM audit WHERE id IN (${ids.join(',')})`, 'warren'), '2', 'the ids returned are the committed rows');
  // A write that had not reached its COMMIT is run again: nothing lost either.
  assert.equal((await s.appendAudit([row(3)])).length, 1);
  assert.equal(Number(await pg.psql('SELECT count(*) FROM audit', 'warren')), before + 3);
});

test('an unreachable database fails the open with the URL redacted', async () => {
  const url = `postgres://warren:s3cret@127.0.0.1:1/warren`;
  await assert.rejects(PostgresStore.open({ url }, silentLogger), (err: Error) => err.message.includes('postgres://warren:***@127.0.0.1:1/warren') && !err.message.includes('s3cret'));
  assert.equal(redactUrl('postgres://u@h/db'), 'postgres://u@h/db');
  // A wrong password is not retried for the outage window, and not echoed.
  await assert.rejects(PostgresStore.open({ url: pg.url(), password: 'wrong' }, silentLogger), (err: Error) => /password authentication failed/.test(err.message) && !err.message.includes('wrong'));
});

// In-process tests of the hub's forwards with a fake store, opener and agent registry: hub entries
// bind, carry bytes with half-close, refuse sources outside allow-from, close on delete, remember a
// port-0 port, report bind failures as state instead of throwing, and, with several hubs on one store,
// listen on the holder of the hub-side entries only and name it on every hub.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once, EventEmitter } from 'node:events';
import { silentLogger } from '../shared/log.js';
import { relay } from '../tunnel/relay.js';
import type { ForwardRecord } from '../store/store.js';
import type { OpenRequest, Opener, OpenedStream } from '../doors/door.js';
import { Forwards, type ForwardsDeps } from './forwards.js';
import { withDeadline } from '../../test/support/proc.js';

function fakeStore() {
  const rows = new Map<string, ForwardRecord>();
  return {
    rows,
    async listForwards() { return [...rows.values()]; },
    async createForward(f: ForwardRecord) { if (rows.has(f.name)) return false; rows.set(f.name, f); return true; },
    async updateForwardPort(name: string, port: number) { const r = rows.get(name); if (r) rows.set(name, { ...r, entryPort: port }); },
    async deleteForward(name: string) { return rows.delete(name); },
    async getAgent() { return undefined; },
  };
}

/** An opener that "dials" an in-process echo server, and records every request. */
async function echoOpener() {
  const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const requests: OpenRequest[] = [];
  const opener: Opener = {
    async open(req): Promise<OpenedStream> {
      requests.push(req);
      const stream = net.connect({ port: (echo.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
      await once(stream, 'connect');
      return { agent: 'fake', stream, relay: async (client) => { const c = await relay(client, stream); return { bytesIn: c.aToB, bytesOut: c.bToA, reason: 'closed' }; } };
    },
  };
  return { opener, requests, close: () => echo.close() };
}

function harness(store = fakeStore(), opener: Opener, hubs: Pick<ForwardsDeps, 'holdsHubEntries' | 'entryHub'> = {}) {
  const audits: Array<Record<string, unknown>> = [];
  const forwards = new Forwards({
    store, opener, audit: { record: async (r) => void audits.push(r) }, sessions: Object.assign(new EventEmitter(), { get: () => undefined }),
    log: silentLogger, pingIntervalMs: 10_000, ...hubs,
  });
  return { forwards, audits, store };
}

function roundTrip(port: number, data: Buffer): Promise<{ got: Buffer; reset: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let reset = false;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => (reset = true));
    s.on('close', () => resolve({ got: Buffer.concat(chunks), reset }));
    s.on('end', () => s.end());
    s.once('connect', () => s.end(data));
  });
}

test('a hub entry on port 0 binds, carries bytes both ways with half-close, and keeps its port', async () => {
  const echo = await echoOpener();
  const { forwards, store } = harness(fakeStore(), echo.opener);
  await forwards.start();
  const view = await forwards.create({ name: 'web', entry: 'hub:127.0.0.1:0', target: 'alpha:80', allowFrom: [] }, 'admin');
  assert.equal(view.listening, true);
  const port = Number(view.address!.split(':').pop());
  assert.ok(port > 0);
  assert.equal(store.rows.get('web')!.entryPort, port, 'the bound port is stored');
  const data = Buffer.alloc(300_000, 7);
  const { got } = await roundTrip(port, data);
  assert.deepEqual(got, data);
  const req = echo.requests[0]!;
  assert.equal(req.door, 'forward');
  assert.equal(req.target, 'alpha:80');
  assert.deepEqual(req.principal, { user: 'forward:web', groups: [], via: 'forward', scope: { target: 'alpha:80' } });
  const after = forwards.get('web');
  assert.equal(after.bytesIn, data.length);
  assert.equal(after.bytesOut, data.length);
  assert.equal(after.connections, 1);
  await forwards.remove('web');
  await forwards.close(100);
  echo.close();
});

test('a source outside allow-from is reset at once and audited as denied; the opener is never asked', async () => {
  const echo = await echoOpener();
  const { forwards, audits } = harness(fakeStore(), echo.opener);
  await forwards.start();
  const view = await forwards.create({ name: 'deny', entry: 'hub:127.0.0.1:0', target: 'alpha:80', allowFrom: ['10.99.0.0/16'] }, 'admin');
  const { got } = await roundTrip(Number(view.address!.split(':').pop()), Buffer.from('hello'));
  assert.equal(got.length, 0);
  assert.equal(echo.requests.length, 0);
  const row = audits.find((a) => a.result === 'denied');
  assert.ok(row, 'a denied audit row');
  assert.equal(row.door, 'forward');
  assert.equal(row.user, 'forward:deny');
  assert.match(String(row.reason), /WARREN_E_FORBIDDEN: .*allow-from/);
  await forwards.close(100);
  echo.close();
});

test('delete closes the listener before it returns; a stored forward is opened again on start', async () => {
  const echo = await echoOpener();
  const store = fakeStore();
  const first = harness(store, echo.opener);
  await first.forwards.start();
  const view = await first.forwards.create({ name: 'keep', entry: 'hub:127.0.0.1:0', target: 'alpha:80', allowFrom: [] }, 'admin');
  const port = Number(view.address!.split(':').pop());
  await first.forwards.close(100);

  const second = harness(store, echo.opener);
  await second.forwards.start();
  assert.equal(second.forwards.get('keep').address, `127.0.0.1:${port}`, 'same port after a restart');
  await second.forwards.remove('keep');
  const refused = await withDeadline(new Promise<string>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => (s.destroy(), resolve('connected')));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  }), 5_000, 'a connection to the removed forward\'s port being answered');
  assert.equal(refused, 'ECONNREFUSED');
  await assert.rejects(second.forwards.remove('keep'), /no forward "keep"/);
  await second.forwards.close(100);
  echo.close();
});

test('a bind failure is the forward state, not an exception; bad input and clashes are refused', async () => {
  const echo = await echoOpener();
  const { forwards } = harness(fakeStore(), echo.opener);
  await forwards.start();
  const blocker = net.createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const taken = (blocker.address() as net.AddressInfo).port;
  const view = await forwards.create({ name: 'busy', entry: `hub:127.0.0.1:${taken}`, target: 'alpha:80', allowFrom: [] }, 'admin');
  assert.equal(view.listening, false);
  assert.equal(view.lastError?.code, 'WARREN_E_LISTEN_FAILED');
  assert.match(view.lastError.message, /address is in use/);
  await assert.rejects(forwards.create({ name: 'busy2', entry: `hub:${taken}`, target: 'alpha:80', allowFrom: [] }, 'admin'), /overlaps forward "busy"/);
  await assert.rejects(forwards.create({ name: 'busy', entry: 'hub:0', target: 'alpha:80', allowFrom: [] }, 'admin'), /exists/);
  await assert.rejects(forwards.create({ name: 'Bad Name', entry: 'hub:0', target: 'alpha:80', allowFrom: [] }, 'admin'), /name: /);
  await assert.rejects(forwards.create({ name: 'x', entry: 'hub:0', target: 'alpha', allowFrom: [] }, 'admin'), /target: /);
  await assert.rejects(forwards.create({ name: 'x', entry: 'hub:0', target: 'alpha:1', allowFrom: ['nope'] }, 'admin'), /allowFrom: /);
  const agentSide = await forwards.create({ name: 'edge', entry: 'alpha:0', target: 'beta:80', allowFrom: [] }, 'admin');
  assert.equal(agentSide.listening, false);
  assert.equal(agentSide.lastError?.code, 'WARREN_E_AGENT_OFFLINE');
  blocker.close();
  await forwards.close(100);
  echo.close();
});

test('several hubs on one store: a hub entry listens on the holder only, every hub names the holder, and the listener moves with it', async () => {
  const echo = await echoOpener();
  const store = fakeStore();
  // Which hub holds the hub-side entries, as the hub set (src/hub/hubMesh.ts) would say on every hub.
  let holder = 'hub-a';
  let agentHub: string | null = 'hub-b';
  const hub = (id: string) => harness(store, echo.opener, { holdsHubEntries: () => holder === id, entryHub: (agent) => (agent === null ? holder : agentHub) });
  const a = hub('hub-a');
  const b = hub('hub-b');
  await a.forwards.start();
  await b.forwards.start();
  const created = await b.forwards.create({ name: 'pg', entry: 'hub:127.0.0.1:0', target: 'alpha:5432', allowFrom: [] }, 'admin');
  assert.equal(created.listening, false, 'created on a hub that does not hold the hub-side entries: it does not listen there');
  assert.equal(created.heldBy, 'hub-a');
  await a.forwards.sync(); // what the change feed makes the holder do
  const onA = a.forwards.get('pg');
  assert.equal(onA.listening, true);
  assert.equal(onA.heldBy, 'hub-a');
  const port = Number(onA.address!.split(':').pop());
  assert.deepEqual((await roundTrip(port, Buffer.from('via a'))).got, Buffer.from('via a'));

  holder = 'hub-b';
  await a.forwards.sync();
  await b.forwards.sync();
  assert.deepEqual([a.forwards.get('pg').listening, b.forwards.get('pg').listening], [false, true]);
  assert.deepEqual([a.forwards.get('pg').heldBy, b.forwards.get('pg').heldBy], ['hub-b', 'hub-b']);
  assert.equal(b.forwards.get('pg').address, `127.0.0.1:${port}`, 'the port kept in the store');
  assert.deepEqual((await roundTrip(port, Buffer.from('via b'))).got, Buffer.from('via b'));
  // An agent's entry is run (and reported) by the hub its agent is on; the others do not call it offline.
  const edge = await a.forwards.create({ name: 'edge', entry: 'alpha:0', target: 'beta:80', allowFrom: [] }, 'admin');
  assert.equal(edge.heldBy, 'hub-b');
  assert.deepEqual([edge.listening, edge.lastError], [false, null]);
  agentHub = null;
  assert.equal(a.forwards.get('edge').lastError?.code, 'WARREN_E_AGENT_OFFLINE', 'on no hub: offline');
  await a.forwards.close(100);
  await b.forwards.close(100);
  echo.close();
});

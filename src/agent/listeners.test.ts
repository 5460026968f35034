// The agent's reconcile of forward entries, in process, with a fake uplink: whole-set semantics,
// unchanged entries kept (also when the hub now names the port a port-0 entry got), bind failures
// reported per forward, and the uplink let go when no listener is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../shared/log.js';
import { EntryListeners } from './listeners.js';
import { withDeadline } from '../../test/support/proc.js';

function fakeUplink() {
  let closes = 0;
  return {
    get closes() { return closes; },
    session: () => Promise.reject(new Error('no hub in this test')),
    close: () => {
      closes++;
    },
  };
}

const portOf = (address: string | undefined) => Number(address!.split(':').pop());

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ECONNREFUSED'));
  });
}

/** Connects to an entry and resolves with how the connection ended: its error code, or 'closed'. */
function howItEnds(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    s.on('close', () => resolve('closed'));
  });
}

test('reconcile opens, keeps and closes entries to match the whole set', async () => {
  const uplink = fakeUplink();
  const entries = new EntryListeners({ uplink, log: silentLogger });
  const first = await entries.apply([{ forward: 'a', host: '127.0.0.1', port: 0 }, { forward: 'b', host: '127.0.0.1', port: 0 }]);
  assert.deepEqual(first.listeners.map((l) => [l.forward, l.listening]), [['a', true], ['b', true]]);
  const portA = portOf(first.listeners[0]!.address);
  const portB = portOf(first.listeners[1]!.address);
  assert.equal(await connects(portA), true);

  // The hub now sends the port 'a' got (it remembers it) and drops 'b': 'a' is the same listener.
  const second = await entries.apply([{ forward: 'a', host: '127.0.0.1', port: portA }]);
  assert.deepEqual(second.listeners, [{ forward: 'a', listening: true, address: `127.0.0.1:${portA}` }]);
  assert.equal(await connects(portB), false, 'b is closed');
  assert.equal(entries.size, 1);

  const closesBefore = uplink.closes;
  await entries.apply([]);
  assert.equal(await connects(portA), false, 'a is closed');
  assert.ok(uplink.closes > closesBefore, 'no listeners left: the uplink is let go');
});

test('a bind failure is reported for that forward only', async () => {
  const entries = new EntryListeners({ uplink: fakeUplink(), log: silentLogger });
  const blocker = net.createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const taken = (blocker.address() as net.AddressInfo).port;
  const r = await entries.apply([{ forward: 'busy', host: '127.0.0.1', port: taken }, { forward: 'ok', host: '127.0.0.1', port: 0 }]);
  assert.equal(r.listeners[0]!.listening, false);
  assert.equal(r.listeners[0]!.error?.code, 'WARREN_E_LISTEN_FAILED');
  assert.match(r.listeners[0]!.error.message, /address is in use/);
  assert.equal(r.listeners[1]!.listening, true);
  entries.closeAll();
  blocker.close();
});

test('a connection the agent cannot carry to the hub is reset, not left hanging', async () => {
  const entries = new EntryListeners({ uplink: fakeUplink(), log: silentLogger });
  const r = await entries.apply([{ forward: 'x', host: '127.0.0.1', port: 0 }]);
  const ended = await withDeadline(howItEnds(portOf(r.listeners[0]!.address)), 5_000, 'the entry listener closing a connection it cannot carry');
  assert.match(ended, /ECONNRESET|closed/);
  entries.closeAll();
});

test('a connection the hub never answers is reset after the answer deadline, and its stream cancelled', async (t) => {
  // A hub that takes the stream and then says nothing, neither an answer nor a reset.
  const hub = http2.createServer();
  const cancelled = new Promise<number>((resolve) => hub.on('stream', (stream) => stream.once('close', () => resolve(stream.rstCode ?? -1))));
  hub.listen(0, '127.0.0.1');
  await once(hub, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(hub.address() as net.AddressInfo).port}`);
  t.after(() => (session.destroy(), hub.close()));
  const entries = new EntryListeners({ uplink: { session: () => Promise.resolve(session), close: () => undefined }, log: silentLogger, answerTimeoutMs: 300 });
  t.after(() => entries.closeAll());
  const r = await entries.apply([{ forward: 'x', host: '127.0.0.1', port: 0 }]);
  const ended = await withDeadline(howItEnds(portOf(r.listeners[0]!.address)), 5_000, 'the entry closing a connection the hub never answered');
  assert.equal(ended, 'ECONNRESET');
  assert.equal(await withDeadline(cancelled, 5_000, 'the unanswered stream closing at the hub'), http2.constants.NGHTTP2_CANCEL);
});

test('resetAll (the end of a stop) resets every open entry connection at once: an RST, never a FIN', async (t) => {
  // A hub that answers and then sends nothing: the relay is open, and stays so.
  const hub = http2.createServer();
  hub.on('stream', (stream) => stream.respond({ ':status': 200 }));
  hub.listen(0, '127.0.0.1');
  await once(hub, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(hub.address() as net.AddressInfo).port}`);
  t.after(() => (session.destroy(), hub.close()));
  const entries = new EntryListeners({ uplink: { session: () => Promise.resolve(session), close: () => undefined }, log: silentLogger });
  t.after(() => entries.closeAll());
  const r = await entries.apply([{ forward: 'x', host: '127.0.0.1', port: 0 }]);
  const answered = once(hub, 'stream');
  const ended = howItEnds(portOf(r.listeners[0]!.address));
  await withDeadline(answered, 5_000, 'the connection reaching the hub');
  entries.resetAll();
  assert.equal(await withDeadline(ended, 5_000, 'the entry connection ending'), 'ECONNRESET');
});

/**
 * The SOCKS5 port's per-source limit over real sockets: one address may hold only so many connections
 * that have not had their request read; another address is served meanwhile, and a connection stops
 * counting once its request is read.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { pino } from 'pino';
import { WarrenError } from '../shared/errors.js';
import { startDoorListeners } from './doorListeners.js';
import { withDeadline } from '../../test/support/proc.js';

const GREETING = Buffer.from([0x05, 0x01, 0x02]); // SOCKS5, one method: username/password
const CREDENTIALS = Buffer.from([0x01, 0x01, 0x75, 0x03, 0x74, 0x6f, 0x6b]); // user "u", password "tok"
const REQUEST = Buffer.from([0x05, 0x01, 0x00, 0x03, 0x05, ...Buffer.from('node1'), 0x00, 0x16]); // CONNECT node1:22

test('SOCKS5: beyond --max-pending-per-source a new connection from that address is closed at once; a read request stops counting', { timeout: 20_000 }, async (t) => {
  const doors = await startDoorListeners({
    socksListen: { host: '127.0.0.1', port: 0 },
    connectUds: undefined,
    opener: { open: async () => Promise.reject(new WarrenError('WARREN_E_FORBIDDEN', 'no grant')) },
    authenticator: { fromToken: async () => ({ user: 'u', groups: [], via: 'token' }) },
    log: pino({ level: 'silent' }),
    maxPendingPerSource: 2,
  });
  t.after(() => (doors.stopAccepting(), doors.destroyConnections()));
  const port = doors.socksAddress!.port;
  const connect = async (from: string, opts: { allowHalfOpen?: boolean } = {}) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from, ...opts });
    s.on('error', () => undefined);
    await once(s, 'connect');
    return s;
  };
  /** The next bytes the door sends on `s`; fails naming `what` if none come within 5 s. */
  const reply = async (s: net.Socket, what: string) => {
    const [chunk] = (await once(s, 'data', { signal: AbortSignal.timeout(5_000) }).catch(() => {
      throw new Error(`the door sent no ${what} within 5 s (closed: ${s.destroyed})`);
    })) as [Buffer];
    return [...chunk];
  };
  const methodOf = (s: net.Socket) => (s.write(GREETING), reply(s, 'method selection'));

  // The first one does not close its side when refused, so the door lingers on it.
  const idle = [await connect('127.0.0.2', { allowHalfOpen: true }), await connect('127.0.0.2')];
  const third = await connect('127.0.0.2');
  const received: Buffer[] = [];
  third.on('data', (c: Buffer) => received.push(c));
  await withDeadline(once(third, 'close'), 5_000, 'the door closing the third pending connection from one source');
  assert.deepEqual(received, [], 'closed without a byte');

  // Another address is served meanwhile.
  const other = await connect('127.0.0.1');
  assert.deepEqual(await methodOf(other), [0x05, 0x02]);

  // The first connection from 127.0.0.2 goes through its whole handshake: once its request is read it
  // no longer counts, though it stays open.
  const finisher = idle[0]!;
  assert.deepEqual(await methodOf(finisher), [0x05, 0x02]);
  finisher.write(CREDENTIALS);
  assert.deepEqual(await reply(finisher, 'authentication status'), [0x01, 0x00]);
  finisher.write(REQUEST);
  assert.equal((await reply(finisher, 'CONNECT reply'))[1], 0x02, 'the request was read and refused (not allowed)');
  assert.equal(finisher.destroyed, false);
  const next = await connect('127.0.0.2');
  assert.deepEqual(await methodOf(next), [0x05, 0x02], 'admitted: the finished handshake freed its count');
  for (const s of [...idle, other, next]) s.destroy();
});

test('--connect-uds in a directory that does not exist says so and how to fix it, not "permission denied"', async () => {
  const missing = `/tmp/warren-no-such-dir-${process.pid}/connect.sock`;
  await assert.rejects(
    startDoorListeners({
      socksListen: undefined,
      connectUds: missing,
      opener: { open: async () => Promise.reject(new WarrenError('WARREN_E_FORBIDDEN', 'no grant')) },
      authenticator: { fromToken: async () => ({ user: 'u', groups: [], via: 'token' }) },
      log: pino({ level: 'silent' }),
      maxPendingPerSource: 2,
    }),
    (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && /directory \S+ does not exist; create it \(mkdir -p/.test(e.message) && !/permission/.test(e.message),
  );
});

/**
 * Unit tests of the SOCKS5 door over real TCP sockets on 127.0.0.1, with an in-memory Authenticator
 * and an Opener that "dials" a local TCP target and relays with a plain bidirectional pipe. The
 * end-to-end tests (real hub, agents and curl) live elsewhere.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import { ErrorCodes, WarrenError, type ErrorCode } from '../shared/errors.js';
import type { Authenticator, OpenedStream, Opener, OpenRequest, Principal, RelayResult } from './door.js';
import { handleSocks5, type DoorLog } from './socks5.js';
import {
  encodeGreeting,
  encodeRequest,
  encodeUserPass,
  parseMethodSelection,
  parseReply,
  parseUserPassStatus,
  type ParseResult,
} from './socks5Codec.js';
import { withDeadline } from '../../test/support/proc.js';

const TOKEN = 'tok-3f9c1e-secret-never-logged';
const ALICE: Principal = { user: 'alice', groups: ['dev'], via: 'token' };

const authenticator: Authenticator = {
  async fromToken(token, door) {
    if (token === TOKEN && door === 'socks5') return ALICE;
    throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'the access token is not valid');
  },
};

/** Every log call of every door in this file, checked for secrets at the end. */
const logged: unknown[] = [];
const log: DoorLog = {
  debug: (obj, msg) => logged.push(['debug', obj, msg]),
  info: (obj, msg) => logged.push(['info', obj, msg]),
  warn: (obj, msg) => logged.push(['warn', obj, msg]),
  error: (obj, msg) => logged.push(['error', obj, msg]),
};

after(() => {
  const text = JSON.stringify(logged);
  assert.ok(logged.length > 0, 'the door logged something');
  assert.ok(!text.includes(TOKEN), 'the access token never reaches the log');
  assert.ok(!text.includes('wrong-token'), 'a rejected token never reaches the log');
});

// ---------------------------------------------------------------------------------------------------
// Harness.

interface Door {
  readonly port: number;
  /** Every request the opener saw. */
  readonly requests: OpenRequest[];
  /** Settles when every door call so far has resolved; fails if one rejected. */
  settled(): Promise<void>;
}

async function listen(server: net.Server, t: TestContext): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/**
 * A door on its own listener. Created without allowHalfOpen on purpose: the door must carry
 * half-close whatever options the hub's listener was given.
 */
async function startDoor(t: TestContext, opener: Opener, handshakeTimeoutMs?: number): Promise<Door> {
  const runs: Promise<void>[] = [];
  const requests: OpenRequest[] = [];
  const recording: Opener = {
    open(request) {
      requests.push(request);
      return opener.open(request);
    },
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    runs.push(handleSocks5(socket, { opener: recording, authenticator, log, ...(handshakeTimeoutMs ? { handshakeTimeoutMs } : {}) }));
  });
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const port = await listen(server, t);
  return { port, requests, settled: async () => {
    await Promise.all(runs);
  } };
}

/** What a TCP target saw: bytes received, and whether the EOF arrived. */
interface TargetLog {
  received: Buffer;
  sawEnd: boolean;
  /** Resolves on the target's 'end' (the EOF travelled all the way). */
  readonly ended: Promise<void>;
}

/**
 * A TCP target that answers after the client's EOF (`mode: 'answer-after-eof'`), or that says hello
 * and ends its side first, then keeps reading (`mode: 'end-first'`).
 */
async function startTarget(t: TestContext, mode: 'answer-after-eof' | 'end-first'): Promise<{ port: number; seen: TargetLog[] }> {
  const seen: TargetLog[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const entry: TargetLog = { received: Buffer.alloc(0), sawEnd: false, ended: once(socket, 'end').then(() => undefined) };
    seen.push(entry);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      entry.received = Buffer.concat([entry.received, chunk]);
    });
    if (mode === 'end-first') socket.end('hello from the target');
    socket.on('end', () => {
      entry.sawEnd = true;
      if (mode === 'answer-after-eof') socket.end(`got:${entry.received.toString()}`);
    });
  });
  const port = await listen(server, t);
  return { port, seen };
}

/** Carries bytes both ways with plain pipes; each direction ends on its own (half-close kept). */
function pipeRelay(client: Duplex, target: net.Socket): Promise<RelayResult> {
  return new Promise((resolve) => {
    let bytesIn = 0;
    let bytesOut = 0;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) resolve({ bytesIn, bytesOut, reason: 'closed' });
    };
    client.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    target.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
    client.once('close', closed);
    target.once('close', closed);
    client.on('error', () => target.destroy());
    target.on('error', () => client.destroy());
    client.pipe(target);
    target.pipe(client);
  });
}

/** An opener that dials the local target for every request, whatever the requested host. */
function pipeOpener(targetPort: number): Opener {
  return {
    async open() {
      const stream = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
      await once(stream, 'connect');
      return { agent: 'fake', stream, relay: (client) => pipeRelay(client, stream) } satisfies OpenedStream;
    },
  };
}

function refusingOpener(error: unknown): Opener {
  return {
    open: () => Promise.reject(error),
  };
}

const unusedOpener: Opener = refusingOpener(new Error('the opener must not be called'));

/** A SOCKS5 client over a real socket, reading replies with the codec. */
class Client {
  private buffer = Buffer.alloc(0);
  private readonly changed = new Set<() => void>();
  ended = false;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  /**
   * `allowHalfOpen: false` (the default) behaves like most clients: the door's EOF closes the socket.
   * With true the client keeps sending after the door's EOF.
   */
  static async connect(port: number, t: TestContext, allowHalfOpen = false): Promise<Client> {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen });
    t.after(() => void socket.destroy());
    await once(socket, 'connect');
    return new Client(socket);
  }

  private notify(): void {
    for (const wake of [...this.changed]) wake();
  }

  private until<T>(check: () => T | undefined): Promise<T> {
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          this.changed.delete(wake);
          reject(err);
          return;
        }
        if (value !== undefined) {
          this.changed.delete(wake);
          resolve(value);
        }
      };
      this.changed.add(wake);
      wake();
    });
  }

  /** The next message, parsed; fails if the server closes or sends something else. */
  next<T>(parse: (buf: Uint8Array) => ParseResult<T>): Promise<T> {
    return this.until(() => {
      const result = parse(this.buffer);
      if (result.kind === 'ok') {
        this.buffer = this.buffer.subarray(result.consumed);
        return result.value;
      }
      if (result.kind === 'error') throw new Error(`bad message from the door: ${result.reason}`);
      if (this.ended || this.closed) throw new Error(`the door closed mid-message (${this.buffer.toString('hex')})`);
      return undefined;
    });
  }

  /** Everything until the door's EOF. */
  rest(): Promise<Buffer> {
    return this.until(() => (this.ended || this.closed ? this.buffer : undefined));
  }

  /** Waits for the socket to close entirely. */
  whenClosed(): Promise<void> {
    return this.until(() => (this.closed ? true : undefined)).then(() => undefined);
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Greeting and credentials, checking both answers. */
  async authenticate(token = TOKEN): Promise<void> {
    this.write(encodeGreeting([0x00, 0x02]));
    assert.deepEqual(await this.next(parseMethodSelection), { method: 0x02 });
    this.write(encodeUserPass('alice', token));
    assert.deepEqual(await this.next(parseUserPassStatus), { ok: true, status: 0 });
  }
}

// ---------------------------------------------------------------------------------------------------

describe('socks5 door: authentication', () => {
  test('a valid token in the password: CONNECT reaches the target with the caller and source', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const door = await startDoor(t, pipeOpener(target.port));
    const client = await Client.connect(door.port, t);
    const clientPort = client.socket.localPort;
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }));
    assert.deepEqual(await client.next(parseReply), { reply: 0x00, host: '0.0.0.0', port: 0, addressType: 'ipv4' });
    client.write('hello');
    client.socket.end();
    assert.equal((await client.rest()).toString(), 'got:hello');
    await client.whenClosed();
    await door.settled();

    assert.equal(door.requests.length, 1);
    const [request] = door.requests;
    assert.equal(request?.target, 'db.alpha.warren:5432');
    assert.equal(request?.door, 'socks5');
    assert.deepEqual(request?.principal, ALICE);
    assert.equal(request?.source, `127.0.0.1:${clientPort}`);
    assert.ok(request?.early instanceof net.Socket, 'the client is handed over as the early-data client the opener watches');
  });

  test('a wrong token gets status 0x01 and the socket is closed; nothing is opened', async (t) => {
    const door = await startDoor(t, unusedOpener);
    const client = await Client.connect(door.port, t);
    client.write(encodeGreeting([0x02]));
    assert.deepEqual(await client.next(parseMethodSelection), { method: 0x02 });
    client.write(encodeUserPass(TOKEN, 'wrong-token'));
    assert.deepEqual(await client.next(parseUserPassStatus), { ok: false, status: 0x01 });
    assert.equal((await client.rest()).length, 0);
    await client.whenClosed();
    await door.settled();
    assert.equal(door.requests.length, 0);
  });

  test('an empty password (token put in the username) gets status 0x01', async (t) => {
    const door = await startDoor(t, unusedOpener);
    const client = await Client.connect(door.port, t);
    client.write(encodeGreeting([0x02]));
    await client.next(parseMethodSelection);
    const user = Buffer.from(TOKEN);
    client.write(Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([0x00])]));
    assert.deepEqual(await client.next(parseUserPassStatus), { ok: false, status: 0x01 });
    await client.whenClosed();
    await door.settled();
  });

  test('a client offering only "no authentication" gets 0xFF and is closed', async (t) => {
    const door = await startDoor(t, unusedOpener);
    const client = await Client.connect(door.port, t);
    client.write(encodeGreeting([0x00]));
    assert.deepEqual(await client.next(parseMethodSelection), { method: 0xff });
    assert.equal((await client.rest()).length, 0);
    await client.whenClosed();
    await door.settled();
  });

  test('a greeting with zero methods gets 0xFF and is closed', async (t) => {
    const door = await startDoor(t, unusedOpener);
    const client = await Client.connect(door.port, t);
    client.write(Buffer.from([0x05, 0x00]));
    assert.deepEqual(await client.next(parseMethodSelection), { method: 0xff });
    await client.whenClosed();
    await door.settled();
  });

  test('with noAuthPrincipal (warren socks on loopback) "no authentication" is accepted as that principal', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const local: Principal = { user: 'local', groups: [], via: 'token' };
    const requests: OpenRequest[] = [];
    const opener: Opener = { open: (r) => (requests.push(r), pipeOpener(target.port).open(r)) };
    const runs: Promise<void>[] = [];
    const server = net.createServer((socket) => void runs.push(handleSocks5(socket, { opener, authenticator, log, noAuthPrincipal: local })));
    const port = await listen(server, t);
    const client = await Client.connect(port, t);
    client.write(encodeGreeting([0x00, 0x02]));
    assert.deepEqual(await client.next(parseMethodSelection), { method: 0x00 });
    client.write(encodeRequest({ command: 'connect', host: '10.20.1.2', port: 8080 }));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    client.write('hi');
    client.socket.end();
    assert.equal((await client.rest()).toString(), 'got:hi');
    await Promise.all(runs);
    assert.deepEqual(requests[0]?.principal, local);
  });

  for (const [name, bytes] of [
    ['SOCKS4', Buffer.from('04010016 7f000001 00'.replace(/ /g, ''), 'hex')],
    ['HTTP', Buffer.from('CONNECT a:1 HTTP/1.1\r\n\r\n')],
  ] as const) {
    test(`a ${name} client is closed without an answer`, async (t) => {
      const door = await startDoor(t, unusedOpener);
      const client = await Client.connect(door.port, t);
      client.write(bytes);
      assert.equal((await client.rest()).length, 0);
      await client.whenClosed();
      await door.settled();
    });
  }
});

describe('socks5 door: requests', () => {
  test('each WarrenError code is answered with its SOCKS reply, then the socket is closed', async (t) => {
    const codes = Object.keys(ErrorCodes) as ErrorCode[];
    for (const code of codes) {
      const door = await startDoor(t, refusingOpener(new WarrenError(code, `refused with ${code}`)));
      const client = await Client.connect(door.port, t);
      await client.authenticate();
      client.write(encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }));
      const reply = await client.next(parseReply);
      assert.equal(reply.reply, ErrorCodes[code].socks, code);
      await client.whenClosed();
      await door.settled();
    }
  });

  test('an error that is not a WarrenError is answered 0x01 (general failure)', async (t) => {
    const door = await startDoor(t, refusingOpener(new TypeError('boom')));
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: '10.0.0.1', port: 80 }));
    assert.equal((await client.next(parseReply)).reply, 0x01);
    await client.whenClosed();
    await door.settled();
  });

  for (const command of ['bind', 'udp-associate', 0x09] as const) {
    test(`${command} is answered 0x07 (command not supported) and nothing is opened`, async (t) => {
      const door = await startDoor(t, unusedOpener);
      const client = await Client.connect(door.port, t);
      await client.authenticate();
      client.write(encodeRequest({ command, host: '0.0.0.0', port: 0 }));
      assert.equal((await client.next(parseReply)).reply, 0x07);
      await client.whenClosed();
      await door.settled();
      assert.equal(door.requests.length, 0);
    });
  }

  for (const [name, hex, reply] of [
    ['an unknown address type', '05 01 00 02 7f000001 0016', 0x08],
    ['a reserved byte that is not zero', '05 01 01 01 7f000001 0016', 0x01],
    ['CONNECT to port 0', '05 01 00 01 7f000001 0000', ErrorCodes.WARREN_E_BAD_TARGET.socks],
    ['a control byte in the domain', '05 01 00 03 03 61 0a 62 0016', ErrorCodes.WARREN_E_BAD_TARGET.socks],
  ] as const) {
    test(`a request with ${name} is answered 0x${reply.toString(16).padStart(2, '0')}`, async (t) => {
      const door = await startDoor(t, unusedOpener);
      const client = await Client.connect(door.port, t);
      await client.authenticate();
      client.write(Buffer.from(hex.replace(/ /g, ''), 'hex'));
      assert.equal((await client.next(parseReply)).reply, reply);
      await client.whenClosed();
      await door.settled();
      assert.equal(door.requests.length, 0);
    });
  }

  for (const [host, port, expected] of [
    ['::1', 22, '[::1]:22'],
    ['2001:0db8:0:0:0:0:0:1', 443, '[2001:db8::1]:443'],
    ['10.1.2.3', 8080, '10.1.2.3:8080'],
    ['worker', 22, 'worker:22'],
  ] as const) {
    test(`the opener is asked for ${expected}`, async (t) => {
      const door = await startDoor(t, refusingOpener(new WarrenError('WARREN_E_UNKNOWN_TARGET', 'no agent serves it')));
      const client = await Client.connect(door.port, t);
      await client.authenticate();
      client.write(encodeRequest({ command: 'connect', host, port }));
      assert.equal((await client.next(parseReply)).reply, 0x04);
      await client.whenClosed();
      await door.settled();
      assert.equal(door.requests[0]?.target, expected);
    });
  }

  // A FIN alone is not leaving: a client may half-close right after its request and still want the
  // answer (see the pipelined test). A reset is: the opener sees its early-data client close (the real
  // opener then ends its waits, src/hub/opener.test.ts).
  test('a client that resets while the stream is opening: the opener sees its client close', async (t) => {
    let sawAbort!: () => void;
    const aborted = new Promise<void>((resolve) => (sawAbort = resolve));
    const door = await startDoor(t, {
      open: ({ early }) =>
        new Promise((_, reject) => {
          early?.once('close', () => {
            sawAbort();
            reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the client left'));
          });
        }),
    });
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'slow.alpha.warren', port: 1 }));
    // The open has started once the request reached the opener; only then does the client leave.
    await withDeadline((async () => {
      while (door.requests.length === 0) await new Promise((resolve) => setImmediate(resolve));
    })(), 5_000, 'the CONNECT request reaching the opener');
    client.socket.resetAndDestroy();
    await aborted;
    await door.settled();
  });

  test('a relay that rejects does not make the door reject', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const real = pipeOpener(target.port);
    const door = await startDoor(t, {
      async open(request) {
        const opened = await real.open(request);
        return { ...opened, relay: () => Promise.reject(new Error('relay broke')) };
      },
    });
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'a.alpha.warren', port: 1 }));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    await client.whenClosed();
    await door.settled();
  });
});

describe('socks5 door: stream', () => {
  test('bytes pipelined after the request, with the FIN in the same burst, reach the target', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const door = await startDoor(t, pipeOpener(target.port));
    const client = await Client.connect(door.port, t);
    // An optimistic client: everything in one segment, then its FIN, before any answer.
    client.socket.end(
      Buffer.concat([
        encodeGreeting([0x02]),
        encodeUserPass('', TOKEN),
        encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }),
        Buffer.from('early bytes'),
      ]),
    );
    assert.deepEqual(await client.next(parseMethodSelection), { method: 0x02 });
    assert.deepEqual(await client.next(parseUserPassStatus), { ok: true, status: 0 });
    assert.equal((await client.next(parseReply)).reply, 0x00);
    assert.equal((await client.rest()).toString(), 'got:early bytes');
    await client.whenClosed();
    await door.settled();
    assert.equal(target.seen[0]?.received.toString(), 'early bytes');
    assert.equal(target.seen[0]?.sawEnd, true);
  });

  test('bytes pipelined after the request, then more later, arrive in order', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const door = await startDoor(t, pipeOpener(target.port));
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(Buffer.concat([encodeRequest({ command: 'connect', host: 'x.alpha.warren', port: 9 }), Buffer.from('one,')]));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    client.socket.end('two');
    assert.equal((await client.rest()).toString(), 'got:one,two');
    await door.settled();
  });

  test('half-close: the client ends, the target sees EOF and its answer still comes back', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const door = await startDoor(t, pipeOpener(target.port));
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    client.write('SELECT 1');
    client.socket.end();
    // The answer is written only after the target's 'end': receiving it proves both halves.
    assert.equal((await client.rest()).toString(), 'got:SELECT 1');
    assert.equal(target.seen[0]?.sawEnd, true);
    await client.whenClosed();
    await door.settled();
  });

  test('half-close the other way: the target ends first and the client can still send', async (t) => {
    const target = await startTarget(t, 'end-first');
    const door = await startDoor(t, pipeOpener(target.port));
    const client = await Client.connect(door.port, t, true);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    assert.equal((await client.rest()).toString(), 'hello from the target');
    assert.equal(client.closed, false, 'the client side is still open for writing');
    client.socket.end('late words');
    await client.whenClosed();
    await door.settled();
    await target.seen[0]?.ended;
    assert.equal(target.seen[0]?.received.toString(), 'late words');
    assert.equal(target.seen[0]?.sawEnd, true);
  });
});

describe('socks5 door: handshake timeout', () => {
  for (const [name, send] of [
    ['sends nothing', () => {}],
    ['stalls mid-greeting', (c: Client) => c.write(Buffer.from([0x05, 0x02, 0x00]))],
    ['stalls mid-credentials', (c: Client) => c.write(Buffer.concat([encodeGreeting([0x02]), encodeUserPass('a', TOKEN).subarray(0, 5)]))],
    ['stalls mid-request', (c: Client) => c.write(Buffer.concat([encodeGreeting([0x02]), encodeUserPass('a', TOKEN), Buffer.from([0x05, 0x01, 0x00, 0x03, 0x20, 0x61])]))],
  ] as const) {
    test(`a client that ${name} is cut off at the timeout`, async (t) => {
      const timeoutMs = 150;
      const door = await startDoor(t, unusedOpener, timeoutMs);
      const client = await Client.connect(door.port, t);
      const started = performance.now();
      send(client);
      await client.whenClosed();
      assert.ok(performance.now() - started >= timeoutMs - 20, 'not before the timeout');
      await door.settled();
      assert.equal(door.requests.length, 0);
    });
  }

  test('the handshake timer stops once the request is in: a long stream is not cut', async (t) => {
    const target = await startTarget(t, 'answer-after-eof');
    const door = await startDoor(t, pipeOpener(target.port), 100);
    const client = await Client.connect(door.port, t);
    await client.authenticate();
    client.write(encodeRequest({ command: 'connect', host: 'db.alpha.warren', port: 5432 }));
    assert.equal((await client.next(parseReply)).reply, 0x00);
    // Outlive the handshake timeout with the stream open (a deliberate wait: nothing to wait on).
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(client.closed, false);
    client.socket.end('still here');
    assert.equal((await client.rest()).toString(), 'got:still here');
    await door.settled();
  });
});

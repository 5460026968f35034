// Acceptance: the hub's one port survives hostile and malformed input. Each bad client must be refused
// or timed out (the hub closes the socket within a deadline) while, during and after it, /healthz and a
// CONNECT through an agent keep working, and the hub process never exits. The CLI's usage errors are
// exit code 2 with exactly one line on stderr.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, run, waitForLine, withDeadline } from '../support/proc.js';
import { sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { cli, startAgent, startHub, WARREN_BIN, type AgentProc, type HubProc } from '../support/warren.js';

/** The hub runs with --header-timeout 1s: TLS handshake and request headers must complete within it. */
const HEADER_TIMEOUT_MS = 1_000;
/** How long a timed-out client may stay open: the timeout, the server's check interval (≤ 1 s), slack. */
const TIMEOUT_CLOSE_DEADLINE_MS = HEADER_TIMEOUT_MS + 1_000 + 2_000;
/** An outright refusal (not TLS at all) must be quicker. */
const REFUSAL_DEADLINE_MS = 2_000;
const AGENT = 'probe1';

interface Closed {
  /** Everything the hub sent before closing. */
  data: Buffer;
  /** ms from connect to close. */
  ms: number;
  error?: string;
}

/** Resolves when `socket` closes, with what it received; rejects if it is still open after `ms`. */
function closedWithin(socket: net.Socket, ms: number, what: string): Promise<Closed> {
  const started = Date.now();
  const chunks: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (err: NodeJS.ErrnoException) => void (error ??= err.code ?? err.message));
  const closed = new Promise<Closed>((resolve) =>
    socket.once('close', () => resolve({ data: Buffer.concat(chunks), ms: Date.now() - started, ...(error ? { error } : {}) })),
  );
  return withDeadline(closed, ms, `the hub closing ${what}`).finally(() => socket.destroy());
}

/** The first bytes a real TLS client sends (a ClientHello), captured from a local listener. */
async function captureClientHello(): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const first = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (c: Buffer) => (resolve(c), s.destroy()))));
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'hub.example', ALPNProtocols: ['http/1.1'] });
    client.on('error', () => undefined);
    const hello = await withDeadline(first, 5_000, 'capturing a ClientHello');
    client.destroy();
    return hello;
  } finally {
    server.close();
  }
}

describe('bad input against one hub', () => {
  const procs = new ChildGroup();
  let hub: HubProc;
  let agent: AgentProc;
  let echo: Upstream;
  let ca: Buffer;
  const timers = new Set<NodeJS.Timeout>();

  before(async () => {
    hub = await startHub({ group: procs, args: ['--header-timeout', `${HEADER_TIMEOUT_MS}ms`] });
    agent = await startAgent({ group: procs, hub, name: AGENT });
    echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    ca = fs.readFileSync(hub.caPath);
  });

  after(async () => {
    for (const t of timers) clearInterval(t);
    await procs.killAll();
    procs.dispose();
    for (const d of [hub?.dataDir, agent?.dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  const tlsTo = (): tls.TLSSocket => tls.connect({ host: '127.0.0.1', port: hub.port, ca, ALPNProtocols: ['http/1.1'] });
  const rawTo = (): net.Socket => net.connect({ host: '127.0.0.1', port: hub.port });

  function assertHubAlive(): void {
    assert.equal(hub.child.exitCode, null, 'the hub exited');
    assert.equal(hub.child.signalCode, null, 'the hub was killed');
  }

  /** GET /healthz answers 200 {"status":"ok"}. */
  function healthz(): Promise<void> {
    return withDeadline(
      new Promise<void>((resolve, reject) => {
        const req = https.get(`${hub.url}/healthz`, { ca, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              assert.equal(res.statusCode, 200);
              assert.equal(JSON.parse(Buffer.concat(chunks).toString()).status, 'ok');
              resolve();
            } catch (err) {
              reject(err);
            }
          });
        });
        req.on('error', reject);
      }),
      5_000,
      'GET /healthz',
    );
  }

  /** Opens a CONNECT tunnel through the agent to the echo upstream; resolves once the hub answered 200. */
  function openTunnel(): Promise<tls.TLSSocket> {
    const target = `${AGENT}:${echo.port}`;
    return withDeadline(
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const socket = tlsTo();
        socket.on('error', reject);
        socket.once('secureConnect', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${hub.adminToken}\r\n\r\n`));
        let head = Buffer.alloc(0);
        const onData = (c: Buffer) => {
          head = Buffer.concat([head, c]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          socket.off('data', onData);
          socket.off('error', reject);
          const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
          if (!/^HTTP\/1\.1 200 /.test(status)) return reject(new Error(`CONNECT ${target}: ${status}`));
          socket.pause();
          if (head.length > end + 4) socket.unshift(head.subarray(end + 4));
          resolve(socket);
        };
        socket.on('data', onData);
      }),
      10_000,
      `CONNECT ${target}`,
    );
  }

  /** Writes `payload`, half-closes, and resolves with what the echo upstream sent back until its EOF. */
  function echoThrough(socket: tls.TLSSocket, payload: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const body: Buffer[] = [];
      socket.on('data', (c: Buffer) => body.push(c));
      socket.on('error', reject);
      socket.on('end', () => {
        socket.destroy();
        resolve(Buffer.concat(body));
      });
      socket.on('close', () => reject(new Error('the tunnel closed before its end')));
      socket.resume();
      socket.end(payload);
    });
  }

  /** A CONNECT through the agent to the echo upstream carries 64 KiB there and back intact. */
  async function connectWorks(): Promise<void> {
    const payload = randomBytes(64 * 1024);
    const tunnel = await openTunnel();
    const echoed = await withDeadline(echoThrough(tunnel, payload), 10_000, 'echo through a fresh tunnel');
    assert.equal(echoed.length, payload.length);
    assert.equal(sha256Hex(echoed), sha256Hex(payload));
  }

  /** /healthz and a CONNECT both work, and the hub is still running. */
  async function hubServes(): Promise<void> {
    await Promise.all([healthz(), connectWorks()]);
    assertHubAlive();
  }

  it('serves normally before any bad input', hubServes);

  it('garbage bytes are refused at once', async () => {
    const socket = rawTo();
    // 0x47 'G' … not a TLS record type: the handshake fails on the first byte.
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from('\x00\xff\x13\x37garbage'), randomBytes(4096)])));
    const [closed] = await Promise.all([closedWithin(socket, REFUSAL_DEADLINE_MS, 'a garbage connection'), hubServes()]);
    assert.ok(!closed.data.toString('latin1').includes('HTTP/1.1 200'), 'garbage must not get an HTTP answer');
    await hubServes();
  });

  it('a plain-HTTP request to the TLS port is refused', async () => {
    const socket = rawTo();
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n'));
    const [closed] = await Promise.all([closedWithin(socket, REFUSAL_DEADLINE_MS, 'a plain-HTTP connection'), hubServes()]);
    // Whatever it sent (nothing, or a TLS alert), it is not an HTTP response served in clear text.
    assert.ok(!closed.data.toString('latin1').startsWith('HTTP/'), `plain HTTP got: ${JSON.stringify(closed.data.toString('latin1'))}`);
    await hubServes();
  });

  it('truncated TLS ClientHellos that stall are timed out, 20 at once', async () => {
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    const sockets = Array.from({ length: 20 }, () => {
      const s = rawTo();
      s.on('connect', () => s.write(hello.subarray(0, 20)));
      return s;
    });
    const closing = sockets.map((s, i) => closedWithin(s, TIMEOUT_CLOSE_DEADLINE_MS, `stalled handshake #${i}`));
    // During: all twenty are still stalled (the deadline is a second away) and the hub serves others.
    await hubServes();
    const closed = await Promise.all(closing);
    for (const c of closed) {
      assert.equal(c.data.length === 0 || c.data[0] === 0x15, true, `a stalled handshake got something other than an alert: ${c.data.toString('hex', 0, 16)}`);
      assert.ok(c.ms >= HEADER_TIMEOUT_MS - 100, `closed after ${c.ms} ms, before the header timeout`);
    }
    await hubServes();
  });

  it('an oversized request header (> 16 KiB) gets 431 or a clean close', async () => {
    const socket = tlsTo();
    socket.once('secureConnect', () => socket.write(`GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Filler: ${'a'.repeat(20 * 1024)}\r\n\r\n`));
    const [closed] = await Promise.all([closedWithin(socket, REFUSAL_DEADLINE_MS, 'an oversized header'), hubServes()]);
    const answer = closed.data.toString('latin1');
    assert.ok(answer === '' || answer.startsWith('HTTP/1.1 431 '), `oversized header got: ${JSON.stringify(answer.slice(0, 200))}`);
    assert.ok(!answer.includes('"status":"ok"'), 'the request must not have been served');
    await hubServes();
  });

  it('a slowloris (one header byte every 200 ms after TLS) is cut off by --header-timeout', async () => {
    // Regression: the hub's HTTP server never listens itself, so Node's header-timeout checker was never
    // started and a drip-fed request was kept open forever.
    // An established CONNECT tunnel, idle across the header timeout, must not be cut off with it.
    const tunnel = await openTunnel();
    const socket = tlsTo();
    const drip = Buffer.from(`GET /healthz HTTP/1.1\r\nHost: hub\r\n${'X-Slow: loris\r\n'.repeat(100)}`);
    let sent = 0;
    socket.once('secureConnect', () => {
      const timer = setInterval(() => {
        if (socket.destroyed || sent >= drip.length) return void (clearInterval(timer), timers.delete(timer));
        socket.write(drip.subarray(sent, ++sent));
      }, 200);
      timers.add(timer);
    });
    const closing = closedWithin(socket, TIMEOUT_CLOSE_DEADLINE_MS, 'a slowloris connection');
    await hubServes(); // during
    const closed = await closing;
    const answer = closed.data.toString('latin1');
    assert.ok(answer === '' || answer.startsWith('HTTP/1.1 408 '), `slowloris got: ${JSON.stringify(answer.slice(0, 200))}`);
    assert.ok(sent < drip.length, `the hub waited for all ${drip.length} bytes`);
    assert.ok(closed.ms >= HEADER_TIMEOUT_MS - 100, `closed after ${closed.ms} ms, before the header timeout`);
    await hubServes(); // after
    // The tunnel opened before the slowloris, idle for longer than the header timeout, still carries bytes.
    const payload = randomBytes(32 * 1024);
    const echoed = await withDeadline(echoThrough(tunnel, payload), 5_000, 'echo through the idle tunnel');
    assert.equal(sha256Hex(echoed), sha256Hex(payload));
  });

  /** Sends `head` over TLS and resolves with the status and JSON body of the answer (the hub closes after it). */
  async function ask(head: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const socket = tlsTo();
    socket.once('secureConnect', () => socket.write(head));
    const closed = await closedWithin(socket, REFUSAL_DEADLINE_MS, JSON.stringify(head.split('\r\n')[0]));
    const text = closed.data.toString('utf8');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
    assert.ok(m, `no HTTP answer to ${JSON.stringify(head.split('\r\n')[0])}: ${JSON.stringify(text.slice(0, 200))}`);
    return { status: Number(m[1]), body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown> };
  }

  it('regression: malformed CONNECT authorities (zone id, percent-encoding, empty host, bad port) are 400 WARREN_E_BAD_TARGET, not 500', async () => {
    for (const authority of ['[fe80::1%25eth0]:22', '[fe80::1%eth0]:22', 'db%2Eprod:5432', '%E0:22', ':22', 'node1:0', 'node1:65536', '[::1]:99999']) {
      const { status, body } = await ask(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nProxy-Authorization: Bearer ${hub.adminToken}\r\nConnection: close\r\n\r\n`);
      assert.equal(status, 400, `CONNECT ${authority}: ${JSON.stringify(body)}`);
      assert.equal(body.code, 'WARREN_E_BAD_TARGET', authority);
      assert.match(String(body.requestId), /^[0-9a-f]{12}$/, authority);
    }
    await hubServes();
  });

  it('regression: GET /api/v1/agents/%E0 (not UTF-8 once decoded) is 400 WARREN_E_BAD_REQUEST, not 500', async () => {
    const { status, body } = await ask(`GET /api/v1/agents/%E0 HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ${hub.adminToken}\r\nConnection: close\r\n\r\n`);
    assert.equal(status, 400, JSON.stringify(body));
    assert.equal(body.code, 'WARREN_E_BAD_REQUEST');
    assert.equal(body.field, 'name');
    assert.match(String(body.requestId), /^[0-9a-f]{12}$/);
    await hubServes();
  });

  it('the hub process never exited and logged no error', async () => {
    assertHubAlive();
    // waitForLine searches past output first; a 1 ms deadline turns it into "was such a line ever printed".
    await assert.rejects(waitForLine(hub.child, /"level":(50|60)\b/, { timeoutMs: 1 }), /timed out/);
  });

  describe('CLI usage errors: exit code 2, exactly one line on stderr', () => {
    const cases: Array<[string, string[]]> = [
      ['an unknown flag', ['agents', '--bogus']],
      ['grant without --agent or --cluster', ['grant', '--user', 'x']],
      ['connect to something that is not HOST:PORT', ['connect', 'notatarget']],
    ];
    for (const [what, args] of cases) {
      it(`${what}: warren ${args.join(' ')}`, async () => {
        const r = await cli(hub, args, { timeoutMs: 15_000 });
        assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /^[^\n]+\n$/, `exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
      });
    }

    it('regression: a malformed connect target is a usage error even with no hub configured (not exit 1 "no hub")', async () => {
      const env = { PATH: process.env.PATH, HOME: hub.dataDir, WARREN_CONFIG: `${hub.dataDir}/no-such-login.json` };
      const r = await run(process.execPath, [WARREN_BIN, 'connect', 'notatarget'], { env, timeoutMs: 15_000 });
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      assert.match(r.stderr, /^[^\n]*notatarget[^\n]*\n$/);
    });
  });
});

// Acceptance: TCP half-close carried end to end (the `nc -N` case). The client sends a request, shuts
// its write side, and the target answers only after it has read that EOF. A relay that closes both
// directions on the first EOF (chisel's old bug) loses the answer; Warren must deliver all of it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, waitForExit, withDeadline } from '../support/proc.js';
import { sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { accessToken, cli, startAgent, startHub, WARREN_BIN, type AgentProc, type HubProc } from '../support/warren.js';
import { waitForAudit } from '../support/audit.js';

const AGENT = 'hc1';

/** What the `halfclose` upstream answers once it has read `data` and then EOF. */
const answerFor = (data: Buffer) => `got ${data.length} bytes sha256=${sha256Hex(data)}\n`;



describe('half-close through the hub', () => {
  const procs = new ChildGroup();
  let hub: HubProc;
  let agent: AgentProc;
  let halfclose: Upstream;
  let echo: Upstream;
  let token: string;

  before(async () => {
    hub = await startHub({ group: procs });
    agent = await startAgent({ group: procs, hub, name: AGENT });
    halfclose = await startUpstream('halfclose', { group: procs, listen: '127.0.0.1:0' });
    echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    token = await accessToken(hub, 'nc-user');
    const g = await cli(hub, ['grant', '--user', 'nc-user', '--agent', AGENT, '--ports', `${halfclose.port},${echo.port}`]);
    assert.equal(g.code, 0, g.stderr);
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of [hub?.dataDir, agent?.dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('`warren connect` with stdin that ends gets the answer the target sends after EOF, exit 0', async () => {
    const request = randomBytes(256 * 1024 + 3);
    const r = await cli(hub, ['connect', `${AGENT}:${halfclose.port}`], { token, input: request, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const expected = answerFor(request);
    assert.equal(r.stdoutBytes.length, Buffer.byteLength(expected));
    assert.equal(r.stdout, expected);

    // An empty request is the edge case: EOF is the only thing the target ever reads.
    const empty = await cli(hub, ['connect', `${AGENT}:${halfclose.port}`], { token, input: Buffer.alloc(0), timeoutMs: 20_000 });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, answerFor(Buffer.alloc(0)));
  });

  it('`warren connect` keeps receiving a large answer after stdin ended (echo)', async () => {
    // echo writes back while reading and ends only after our EOF: most of the answer flows after it.
    const request = randomBytes(8 * 1024 * 1024 + 1);
    const r = await cli(hub, ['connect', `${AGENT}:${echo.port}`], { token, input: request, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes.length, request.length);
    assert.equal(sha256Hex(r.stdoutBytes), sha256Hex(request));
  });

  it('regression: the SIGHUP ssh sends its ProxyCommand after closing its pipes does not abort the stream', async () => {
    // ssh ends our stdin, closes our stdout and sends SIGHUP, all at once. `warren connect` used to die
    // there with the hub's last bytes unread: the hub saw a reset and audited the session as aborted.
    const request = randomBytes(4 * 1024 * 1024);
    const child = procs.spawn(process.execPath, [WARREN_BIN, 'connect', `${AGENT}:${echo.port}`], { env: hub.env(token) });
    child.stdin!.end(request);
    await withDeadline(new Promise<void>((resolve) => child.stdout!.once('data', () => resolve())), 10_000, 'the first echoed bytes on warren connect\'s stdout');
    child.stdout!.destroy();
    child.kill('SIGHUP');
    const exit = await waitForExit(child, 10_000);
    assert.equal(exit.signal, null, 'warren connect must not die of the SIGHUP');
    assert.equal(exit.stderr, '', 'nothing for a terminal that is no longer ours');
    await waitForAudit(
      hub,
      (row) => row.user === 'nc-user' && row.target === `${AGENT}:${echo.port}` && row.bytesIn === request.length && row.result === 'ok',
      `an ok row for the hung-up stream with bytesIn=${request.length}`,
    );
  });

  it('a raw TLS CONNECT client that calls end() still reads the whole answer (the hub keeps the half-open socket)', async () => {
    const request = randomBytes(100_000);
    const got = await withDeadline(rawHalfClose(hub, token, `${AGENT}:${halfclose.port}`, request), 15_000, 'raw half-close');
    assert.equal(got.status, 200);
    assert.ok(got.endedAfterOurEnd, 'the hub ended its side only after we half-closed');
    assert.equal(got.answer.toString(), answerFor(request));

    // The audit row counts both directions of that stream.
    await waitForAudit(
      hub,
      (row) => row.user === 'nc-user' && row.result === 'ok' && row.target === `${AGENT}:${halfclose.port}` && row.bytesIn === request.length && row.bytesOut === got.answer.length,
      `an ok row with bytesIn=${request.length} bytesOut=${got.answer.length}`,
    );
  });
});

/**
 * CONNECT over TLS, then write `data`, `end()` (TLS close_notify + TCP FIN on our write side), and read
 * until the hub's EOF. Resolves with the CONNECT status and everything after the response head.
 */
function rawHalfClose(hub: HubProc, token: string, target: string, data: Buffer): Promise<{ status: number; answer: Buffer; endedAfterOurEnd: boolean }> {
  return new Promise((resolve, reject) => {
    // tls.connect honours allowHalfOpen (it is passed to the TLSSocket) though @types/node omits it.
    const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
      host: '127.0.0.1',
      port: hub.port,
      ca: fs.readFileSync(hub.caPath),
      ALPNProtocols: ['http/1.1'],
      allowHalfOpen: true,
    };
    const socket = tls.connect(options);
    socket.on('error', reject);
    socket.once('secureConnect', () => {
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Bearer ${token}\r\n\r\n`);
    });
    let buffered = Buffer.alloc(0);
    let status = 0;
    let weEnded = false;
    const answer: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      if (status !== 0) return void answer.push(chunk);
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      status = Number(buffered.subarray(0, end).toString('latin1').split(' ')[1]);
      const rest = buffered.subarray(end + 4);
      if (rest.length) answer.push(rest);
      if (status !== 200) return;
      socket.end(data, () => void (weEnded = true));
    });
    socket.on('end', () => {
      const endedAfterOurEnd = weEnded;
      socket.destroy();
      resolve({ status, answer: Buffer.concat(answer), endedAfterOurEnd });
    });
  });
}

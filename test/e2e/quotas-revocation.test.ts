// Acceptance: stream quotas and immediate revocation, end to end with a real hub and agent process.
//
//   - one user opening 4,200 streams holds at most --max-streams-per-principal (256) of them: the rest are
//     refused at once (SOCKS reply 0x02; CONNECT 429 with Retry-After), audited and counted in /metrics,
//     while another user's stream to the same agent opens in under a second
//   - `warren tokens rm` and `warren grants rm` cut an open CONNECT stream within a second, and its audit
//     row says `revoked`
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import type tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ConnectRefused, connectThroughHub } from '../support/connectClient.js';
import { ChildGroup, waitForExit, withDeadline } from '../support/proc.js';
import { SocksClient } from '../support/socksClient.js';
import { startUpstream, type Upstream } from '../support/upstreams.js';
import { cli, cliJson, startAgent, startHub, type HubProc } from '../support/warren.js';
import { waitForAudit } from '../support/audit.js';

/** Resolves with the moment (performance.now()) the socket is cut by the far end, which must be a reset, never a clean EOF. */
function closedAt(socket: tls.TLSSocket, ms: number, what: string): Promise<number> {
  return withDeadline(new Promise<number>((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(performance.now()) : reject(err)));
    socket.once('end', () => reject(new Error(`${what}: a clean EOF instead of a reset`)));
  }), ms, what);
}

/** Runs an admin command; asserts `socket` was cut by the time it returned or within 1 s after. */
async function cutWithin1s(hub: HubProc, args: readonly string[], socket: tls.TLSSocket): Promise<void> {
  const closed = closedAt(socket, 5_000, `the stream closing after warren ${args.join(' ')}`);
  const r = await cli(hub, args);
  assert.equal(r.code, 0, r.stderr);
  const returned = performance.now();
  const at = await closed;
  assert.ok(at - returned < 1_000, `cut ${(at - returned).toFixed(0)} ms after the command returned`);
}

/** One byte echoed through an open stream: proves it carries data now. */
async function echoes(socket: tls.TLSSocket): Promise<void> {
  const got = new Promise<Buffer>((resolve) => socket.once('data', resolve));
  socket.resume();
  socket.write('x');
  assert.equal((await withDeadline(got, 5_000, 'the echo')).toString(), 'x');
}

describe('quotas and revocation', () => {
  const procs = new ChildGroup();
  let hub: HubProc;
  let echo: Upstream;
  let socksPort: number;
  const target = () => `node1:${echo.port}`;

  async function token(user: string): Promise<{ token: string; id: string }> {
    return cliJson<{ token: string; id: string }>(hub, ['token', 'create', '--user', user]);
  }
  async function grant(user: string): Promise<string> {
    return (await cliJson<{ id: string }>(hub, ['grant', '--user', user, '--agent', 'node1', '--ports', String(echo.port)])).id;
  }

  before(async () => {
    echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    hub = await startHub({ group: procs, args: ['--socks-listen', '127.0.0.1:0'] });
    socksPort = hub.socksPort!;
    await startAgent({ group: procs, hub, name: 'node1' });
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
  });

  it('4,200 streams from one user: 256 open, the rest refused at once, and another user still gets in within 1 s', async () => {
    await grant('hog');
    await grant('polite');
    const hog = await token('hog');
    const polite = await token('polite');

    const held: SocksClient[] = [];
    const replies = new Map<number | string, number>();
    let next = 0;
    // 32 at a time: well under the hub's per-address limit on connections that have not authenticated.
    await withDeadline(Promise.all(Array.from({ length: 32 }, async () => {
      while (next < 4_200) {
        next++;
        const c = await SocksClient.connect('127.0.0.1', socksPort);
        assert.equal(await c.greet([0x02]), 0x02);
        assert.equal(await c.login(hog.token), 0x00);
        const rep = await c.request('connect', 'node1', echo.port);
        replies.set(rep, (replies.get(rep) ?? 0) + 1);
        if (rep === 0x00) held.push(c);
        else c.socket.destroy();
      }
    })), 120_000, '4,200 SOCKS5 requests');
    assert.deepEqual(Object.fromEntries(replies), { 0: 256, 2: 4_200 - 256 }, 'SOCKS replies: 0x00 for 256, 0x02 (not allowed) for the rest');

    // Another user's stream to the same agent, while hog holds its maximum.
    const t0 = performance.now();
    const s = await connectThroughHub(hub, target(), { token: polite.token });
    await echoes(s);
    const ms = performance.now() - t0;
    assert.ok(ms < 1_000, `another user's stream opened and echoed in ${ms.toFixed(0)} ms`);
    s.destroy();

    // The CONNECT door answers the same quota with 429 and Retry-After.
    await assert.rejects(connectThroughHub(hub, target(), { token: hog.token }), (err: unknown) => {
      assert.ok(err instanceof ConnectRefused);
      assert.equal(err.status, 429);
      assert.equal((JSON.parse(err.body) as { code: string }).code, 'WARREN_E_QUOTA');
      assert.match(err.body, /"retryAfterS":1/);
      return true;
    });
    const row = await waitForAudit(hub, (r) => r.user === 'hog' && r.result === 'denied' && /^WARREN_E_QUOTA: .*--max-streams-per-principal 256/.test(r.reason ?? ''), 'a quota refusal');
    assert.equal(row.door, 'socks5');
    const metrics = await new Promise<string>((resolve, reject) => {
      https.get(`${hub.url}/metrics`, { ca: fs.readFileSync(hub.caPath), headers: { Authorization: `Bearer ${hub.adminToken}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    const refused = /warren_quota_refusals_total\{door="socks5",quota="principal-streams"\} (\d+)/.exec(metrics);
    assert.equal(Number(refused?.[1]), 4_200 - 256);

    // Closing the held streams gives the places back.
    for (const c of held) c.socket.destroy();
    await withDeadline((async () => {
      for (;;) {
        try {
          const again = await connectThroughHub(hub, target(), { token: hog.token });
          again.destroy();
          return;
        } catch (err) {
          if (!(err instanceof ConnectRefused && err.status === 429)) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })(), 10_000, 'a place for hog once its streams closed');
  });

  it('`warren tokens rm` cuts an open CONNECT stream within 1 s, audited as revoked', async () => {
    await grant('carol');
    const carol = await token('carol');
    const s = await connectThroughHub(hub, target(), { token: carol.token });
    await echoes(s);
    await cutWithin1s(hub, ['tokens', 'rm', carol.id], s);
    const row = await waitForAudit(hub, (x) => x.user === 'carol' && x.reason === 'revoked', 'the revoked stream');
    assert.equal(row.result, 'denied');
    await assert.rejects(connectThroughHub(hub, target(), { token: carol.token }), (err: unknown) => err instanceof ConnectRefused && err.status === 407);
  });

  it('`warren grants rm` cuts an open CONNECT stream within 1 s; a stream another grant still allows stays', async () => {
    const gid = await grant('dave');
    const dave = await token('dave');
    const erin = await token('erin');
    await grant('erin');
    const cut = await connectThroughHub(hub, target(), { token: dave.token });
    cut.on('error', () => undefined);
    const kept = await connectThroughHub(hub, target(), { token: erin.token });
    await echoes(cut);
    await echoes(kept);
    await cutWithin1s(hub, ['grants', 'rm', gid], cut);
    await waitForAudit(hub, (x) => x.user === 'dave' && x.reason === 'revoked', 'the revoked stream');
    kept.removeAllListeners('data');
    await echoes(kept);
    kept.destroy();
  });

  // Cutting live HTTP/2 streams (RST_STREAM CANCEL) must not leave the hub unable to exit afterwards.
  it('after revocations the hub still stops cleanly on SIGTERM, within its drain timeout', async () => {
    const t0 = performance.now();
    const exited = waitForExit(hub.child, 15_000);
    hub.child.kill('SIGTERM');
    const r = await exited;
    assert.deepEqual([r.code, r.signal], [0, null], r.stderr.slice(-2000));
    assert.ok(performance.now() - t0 < 12_000, `stopped in ${(performance.now() - t0).toFixed(0)} ms`);
  });
});

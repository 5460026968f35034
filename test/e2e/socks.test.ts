// Acceptance: SOCKS5 doors.
//
// 1. The hub's own SOCKS5 port (`warren hub --socks-listen 127.0.0.1:0`) driven by real curl
//    (`--socks5-hostname`): no credentials, a wrong token, no grant, an unknown host and a closed port
//    each get their RFC 1928/1929 answer — read from curl's error text and, byte for byte, by a client
//    built on the codec — and with a grant a 4 MiB body arrives with the sha256 the upstream sent.
// 2. The client-side doors: `warren socks` (a local SOCKS5 without authentication that carries each
//    connection through the hub's CONNECT door with the caller's token; the hub's refusals come back as
//    the right SOCKS reply) and `warren forward` (like ssh -L), both keeping TCP half-close.
// 3. Real Chromium, launched with --proxy-server=socks5://127.0.0.1:PORT of `warren socks`, loads a page
//    served only inside a node's namespace behind NAT, reached by the agent's route (10.20.1.0/24).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { waitForAudit } from '../support/audit.js';
import { natLab, type NatLab } from '../support/netns.js';
import { ChildGroup, run, waitForLine, withDeadline } from '../support/proc.js';
import { SocksClient } from '../support/socksClient.js';
import { seededSha256, sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { accessToken, cli, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

const BODY_BYTES = 4 * 1024 * 1024;
// Nothing listens on tcpmux; the agent's dial is refused at once (no port found by bind-and-close).
const CLOSED_PORT = 1;

interface CurlResult {
  code: number | null;
  stderr: string;
  body: Buffer;
  /** The SOCKS5 reply code curl reports ("Can't complete SOCKS5 connection to … (N)"), if any. */
  reply: number | undefined;
}

/** RFC 1929 caps the password at 255 bytes; a longer token goes with its head in the username. */
function proxyUser(token: string): string {
  return `:${token}`;
}

async function curlSocks(proxy: string, url: string, auth: string[], dir: string): Promise<CurlResult> {
  const out = path.join(dir, `body-${Math.random().toString(36).slice(2)}`);
  const r = await run('curl', ['-sS', '--max-time', '20', '--socks5-hostname', proxy, ...auth, '-o', out, url], { timeoutMs: 30_000 });
  const m = /Can't complete SOCKS5 connection to .*\((\d+)\)/.exec(r.stderr);
  const body = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
  fs.rmSync(out, { force: true });
  return { code: r.code, stderr: r.stderr, body, reply: m ? Number(m[1]) : undefined };
}

describe('the hub SOCKS5 door with real curl, and `warren socks` / `warren forward`', () => {
  const procs = new ChildGroup();
  const dirs: string[] = [];
  const work = tempDir('socks');
  dirs.push(work);
  let hub: HubProc;
  let socksPort: number;
  let http: Upstream;
  let halfclose: Upstream;
  let granted: string;
  let ungranted: string;

  before(async () => {
    hub = await startHub({ group: procs, args: ['--socks-listen', '127.0.0.1:0'] });
    dirs.push(hub.dataDir);
    socksPort = hub.socksPort!;
    const agent = await startAgent({ group: procs, hub, name: 'site1' });
    dirs.push(agent.dataDir);
    http = await startUpstream('http', { group: procs, listen: '127.0.0.1:0', body: 'socks-door' });
    halfclose = await startUpstream('halfclose', { group: procs, listen: '127.0.0.1:0' });
    granted = await accessToken(hub, 'bob');
    ungranted = await accessToken(hub, 'ana');
    const g = await cli(hub, ['grant', '--user', 'bob', '--agent', 'site1']);
    assert.equal(g.code, 0, g.stderr);
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const hubSocks = () => `127.0.0.1:${socksPort}`;
  const asUser = (token: string) => ['--proxy-user', proxyUser(token)];

  it('hub-issued tokens fit an RFC 1929 password (at most 255 bytes)', () => {
    assert.ok(granted.length <= 255, `token length ${granted.length}`);
    assert.ok(hub.adminToken.length <= 255, `admin token length ${hub.adminToken.length}`);
  });

  it('no credentials: curl is told no method is acceptable (0xFF)', async () => {
    const r = await curlSocks(hubSocks(), `http://site1:${http.port}/`, [], work);
    assert.equal(r.code, 97, r.stderr);
    assert.match(r.stderr, /No authentication method was acceptable/);
    const c = await SocksClient.connect('127.0.0.1', socksPort);
    assert.equal(await c.greet([0x00]), 0xff);
    c.close();
  });

  it('a wrong token: RFC 1929 status 0x01, and nothing is opened', async () => {
    const wrong = `${granted.slice(0, -8)}AAAAAAAA`;
    const r = await curlSocks(hubSocks(), `http://site1:${http.port}/`, asUser(wrong), work);
    assert.equal(r.code, 97, r.stderr);
    assert.match(r.stderr, /User was rejected by the SOCKS5 server \(1 1\)/);
    const c = await SocksClient.connect('127.0.0.1', socksPort);
    assert.equal(await c.greet([0x02]), 0x02);
    assert.equal(await c.login('not-a-token'), 0x01);
    assert.equal((await c.rest()).length, 0, 'closed after the status');
  });

  it('no grant: reply 0x02 (not allowed), audited as denied', async () => {
    const r = await curlSocks(hubSocks(), `http://site1:${http.port}/`, asUser(ungranted), work);
    assert.equal(r.reply, 0x02, r.stderr);
    const c = await SocksClient.connect('127.0.0.1', socksPort);
    assert.equal(await c.greet([0x02]), 0x02);
    assert.equal(await c.login(ungranted), 0x00);
    assert.equal(await c.request('connect', 'site1', http.port), 0x02);
    c.close();
    const row = await waitForAudit(hub, (row) => row.door === 'socks5' && row.user === 'ana' && row.result === 'denied', 'the denied socks5 stream');
    assert.equal(row.target, `site1:${http.port}`);
  });

  it('unknown host: reply 0x04 (host unreachable)', async () => {
    const r = await curlSocks(hubSocks(), 'http://nosuch.example:80/', asUser(granted), work);
    assert.equal(r.reply, 0x04, r.stderr);
    const c = await SocksClient.connect('127.0.0.1', socksPort);
    await c.greet([0x02]);
    await c.login(granted);
    assert.equal(await c.request('connect', 'nosuch.example', 80), 0x04);
    c.close();
  });

  it('closed port: reply 0x05 (connection refused)', async () => {
    const r = await curlSocks(hubSocks(), `http://site1:${CLOSED_PORT}/`, asUser(granted), work);
    assert.equal(r.reply, 0x05, r.stderr);
    const c = await SocksClient.connect('127.0.0.1', socksPort);
    await c.greet([0x02]);
    await c.login(granted);
    assert.equal(await c.request('connect', 'site1', CLOSED_PORT), 0x05);
    c.close();
  });

  it('BIND and UDP ASSOCIATE: reply 0x07 (command not supported)', async () => {
    for (const command of ['bind', 'udp-associate'] as const) {
      const c = await SocksClient.connect('127.0.0.1', socksPort);
      await c.greet([0x02]);
      await c.login(granted);
      assert.equal(await c.request(command, 'site1', http.port), 0x07, command);
      c.close();
    }
  });

  it('with a grant the body arrives intact, and the stream is audited with its bytes', async () => {
    const r = await curlSocks(hubSocks(), `http://site1:${http.port}/bytes?n=${BODY_BYTES}&seed=socks`, asUser(granted), work);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.body.length, BODY_BYTES);
    assert.equal(sha256Hex(r.body), seededSha256('socks', BODY_BYTES));
    const row = await waitForAudit(hub, (row) => row.door === 'socks5' && row.user === 'bob' && row.result === 'ok' && (row.bytesOut ?? 0) > BODY_BYTES, 'the socks5 stream');
    assert.equal(row.agent, 'site1');
    assert.equal(row.target, `site1:${http.port}`);
  });

  describe('`warren socks` (local, no authentication, your token)', () => {
    let localPort: number;

    before(async () => {
      const child = procs.spawn(process.execPath, [WARREN_BIN, 'socks', '--listen', '127.0.0.1:0'], { env: hub.env(granted) });
      localPort = Number((await waitForLine(child, /SOCKS5 listening on 127\.0\.0\.1:(\d+)/, { timeoutMs: 10_000, stream: 'stdout' }))[1]);
    });

    it('carries a body intact through the hub CONNECT door, audited as the token owner', async () => {
      const r = await curlSocks(`127.0.0.1:${localPort}`, `http://site1:${http.port}/bytes?n=${BODY_BYTES}&seed=local`, [], work);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256Hex(r.body), seededSha256('local', BODY_BYTES));
      const row = await waitForAudit(hub, (row) => row.door === 'connect' && row.user === 'bob' && row.result === 'ok' && (row.bytesOut ?? 0) > BODY_BYTES, 'the stream of warren socks');
      assert.equal(row.agent, 'site1');
    });

    it("maps the hub's refusals to SOCKS replies: unknown host 0x04, closed port 0x05", async () => {
      assert.equal((await curlSocks(`127.0.0.1:${localPort}`, 'http://nosuch.example/', [], work)).reply, 0x04);
      assert.equal((await curlSocks(`127.0.0.1:${localPort}`, `http://site1:${CLOSED_PORT}/`, [], work)).reply, 0x05);
    });

    it('keeps half-close: the client ends its side and still gets the answer', async () => {
      const c = await SocksClient.connect('127.0.0.1', localPort);
      assert.equal(await c.greet([0x00]), 0x00);
      assert.equal(await c.request('connect', 'site1', halfclose.port), 0x00);
      c.socket.end('ping through warren socks');
      const answer = (await c.rest()).toString();
      assert.equal(answer, `got 25 bytes sha256=${sha256Hex('ping through warren socks')}\n`);
    });
  });

  describe('`warren forward LOCAL_ADDR:HOST:PORT …`', () => {
    let child: ReturnType<ChildGroup['spawn']>;
    let httpLocal: number;
    let halfLocal: number;

    before(async () => {
      child = procs.spawn(process.execPath, [WARREN_BIN, 'forward', `127.0.0.1:0:site1:${http.port}`, `127.0.0.1:0:site1:${halfclose.port}`], { env: hub.env(granted) });
      httpLocal = Number((await waitForLine(child, new RegExp(`listening on 127\\.0\\.0\\.1:(\\d+) → site1:${http.port}$`), { timeoutMs: 10_000, stream: 'stdout' }))[1]);
      halfLocal = Number((await waitForLine(child, new RegExp(`listening on 127\\.0\\.0\\.1:(\\d+) → site1:${halfclose.port}$`), { timeoutMs: 10_000, stream: 'stdout' }))[1]);
    });

    it('carries HTTP to the target', async () => {
      const r = await run('curl', ['-sS', '--max-time', '20', `http://127.0.0.1:${httpLocal}/`], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /marker=socks-door/);
    });

    it('keeps half-close', async () => {
      const socket = net.connect({ host: '127.0.0.1', port: halfLocal, allowHalfOpen: true });
      await withDeadline(once(socket, 'connect'), 5_000, 'connecting to `warren forward`');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.end('ping through warren forward');
      await withDeadline(once(socket, 'end'), 10_000, 'the half-closed answer ending through `warren forward`');
      socket.destroy();
      assert.equal(Buffer.concat(chunks).toString(), `got 27 bytes sha256=${sha256Hex('ping through warren forward')}\n`);
    });

    it('stops on SIGTERM', async () => {
      await procs.kill(child);
      assert.equal(child.exitCode, 0);
    });
  });
});

describe('Chromium through `warren socks` loads a page served only inside a NAT-ed node', () => {
  let nat: NatLab;
  let hub: HubProc;
  let localPort: number;
  const dirs: string[] = [];

  before(async () => {
    nat = await natLab({ sites: ['node1'] });
    const { lab } = nat;
    hub = await startHub({ group: lab.group, netns: lab.ns('public'), listen: `${nat.public.ip}:8443`, publicUrl: `https://${nat.public.ip}:8443` });
    dirs.push(hub.dataDir);
    const agent = await startAgent({ group: lab.group, hub, name: 'node1', netns: lab.ns('node1'), args: ['--route', nat.site.subnet] });
    dirs.push(agent.dataDir);
    await startUpstream('http', { group: lab.group, netns: lab.ns('node1'), listen: `${nat.site.ip}:8080`, body: 'only-inside-node1' });
    const token = await accessToken(hub, 'ana');
    const g = await cli(hub, ['grant', '--user', 'ana', '--agent', 'node1', '--host', nat.site.subnet, '--ports', '8080']);
    assert.equal(g.code, 0, g.stderr);
    const socks = lab.spawn('public', process.execPath, [WARREN_BIN, 'socks', '--listen', '127.0.0.1:0'], { env: hub.env(token) });
    localPort = Number((await waitForLine(socks, /SOCKS5 listening on 127\.0\.0\.1:(\d+)/, { timeoutMs: 10_000, stream: 'stdout' }))[1]);
  });

  after(async () => {
    await nat?.destroy();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it(`http://10.20.1.2:8080/ renders the node's page`, async () => {
    // `warren socks` listens on the loopback of the public namespace: Chromium must run there too.
    const dir = tempDir('chromium');
    dirs.push(dir);
    const wrapper = path.join(dir, 'chromium-in-public.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${nat.lab.ns('public')} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
    const context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: wrapper,
      timeout: 30_000,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--proxy-server=socks5://127.0.0.1:${localPort}`,
      ],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const response = await page.goto(`http://${nat.site.ip}:8080/`, { timeout: 20_000 });
      assert.equal(response?.status(), 200);
      const text = await page.locator('body').innerText();
      assert.match(text, /^hello from .* marker=only-inside-node1$/m);
      // The upstream saw the agent (its own host), not the browser: the page came through the tunnel.
      assert.equal(await response?.headerValue('x-remote-addr'), nat.site.ip);
    } finally {
      await context.close();
    }
    const row = await waitForAudit(hub, (r) => r.user === 'ana' && r.target === `${nat.site.ip}:8080` && r.result === 'ok', "the browser's stream");
    assert.equal(row.agent, 'node1');
  });
});

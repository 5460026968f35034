// Proves the test harness itself: process helpers, the upstream fixture's modes, the NAT lab (what a
// site can and cannot reach) and a real sshd inside it. If this file fails, no end-to-end result counts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { natLab, type NatLab } from './support/netns.js';
import { ChildGroup, run, waitForExit, waitForLine, withDeadline } from './support/proc.js';
import { startSshd, type Sshd } from './support/sshd.js';
import { seededSha256, sha256Hex, startUpstream, type Upstream } from './support/upstreams.js';

/** Sends `data`, half-closes, and resolves with everything the server sent until its EOF. */
function tcpExchange(host: string, port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port, allowHalfOpen: true }, () => socket.end(data));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
  });
}

/** Splits `curl -D -` output into lower-cased headers and the raw body. */
function parseCurl(out: Buffer): { status: number; headers: Map<string, string>; body: Buffer } {
  const end = out.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no header block in curl output: ${out.toString('utf8', 0, 200)}`);
  const [statusLine, ...lines] = out.subarray(0, end).toString('latin1').split('\r\n');
  const headers = new Map(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const),
  );
  return { status: Number(statusLine!.split(' ')[1]), headers, body: out.subarray(end + 4) };
}

// Run inside a namespace: reports how a TCP connect ends (CONNECTED, an errno code, or TIMEOUT).
const PROBE_CONNECT = `
const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, Number(ms));
s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });
`;

describe('proc helpers', () => {
  const procs = new ChildGroup();
  after(() => procs.killAll());

  it('waitForLine finds a line printed before the call', async () => {
    const child = procs.spawn(process.execPath, ['-e', 'console.log("ready port=42")']);
    await waitForExit(child, 5_000);
    const m = await waitForLine(child, /port=(\d+)/, { timeoutMs: 1_000, stream: 'stdout' });
    assert.equal(m[1], '42');
  });

  it('waitForLine rejects on exit, quoting the output', async () => {
    const child = procs.spawn(process.execPath, ['-e', 'console.error("boom: no config")']);
    await assert.rejects(waitForLine(child, /never/, { timeoutMs: 5_000 }), /exited[\s\S]*boom: no config/);
  });

  it('killAll also stops grandchildren (the whole process group)', async () => {
    // The grandchild inherits stdout, so the group only counts as exited once it is gone too.
    const child = procs.spawn('sh', ['-c', 'sleep 600 & echo started; wait']);
    await waitForLine(child, /started/, { timeoutMs: 5_000 });
    await withDeadline(procs.killAll(), 2_000, 'killAll');
    assert.equal(child.signalCode, 'SIGTERM');
  });

  it('run returns exit code, text and bytes, and feeds stdin', async () => {
    const r = await run('sh', ['-c', 'cat; printf "\\377"; exit 3'], { input: 'abc', timeoutMs: 5_000 });
    assert.equal(r.code, 3);
    assert.deepEqual(r.stdoutBytes, Buffer.from([0x61, 0x62, 0x63, 0xff]));
  });
});

describe('upstream fixture on loopback', () => {
  const procs = new ChildGroup();
  after(() => procs.killAll());
  const deadline = <T>(p: Promise<T>, what: string) => withDeadline(p, 10_000, what);

  it('echo answers everything and ends only after the client half-closes', async () => {
    const up = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    const data = randomBytes(300_000);
    assert.deepEqual(await deadline(tcpExchange(up.host, up.port, data), 'echo'), data);
  });

  it('sink reports the sha256 of what it read', async () => {
    const up = await startUpstream('sink', { group: procs, listen: '127.0.0.1:0' });
    const data = randomBytes(1_000_000);
    const reply = await deadline(tcpExchange(up.host, up.port, data), 'sink');
    assert.equal(reply.toString(), `${sha256Hex(data)}\n`);
  });

  it('source sends the seeded stream', async () => {
    const up = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: 2_000_000, seed: 'lab' });
    const got = await deadline(tcpExchange(up.host, up.port, Buffer.alloc(0)), 'source');
    assert.equal(got.length, 2_000_000);
    assert.equal(sha256Hex(got), seededSha256('lab', 2_000_000));
  });

  it('halfclose answers only after EOF (nc -N)', async () => {
    const up = await startUpstream('halfclose', { group: procs, listen: '127.0.0.1:0' });
    const r = await run('nc', ['-N', up.host, String(up.port)], { input: 'hello', timeoutMs: 10_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `got 5 bytes sha256=${sha256Hex('hello')}\n`);
  });
});

describe('natLab', () => {
  let nat: NatLab;
  let siteHttp: Upstream;
  let publicHttp: Upstream;
  let sshd: Sshd;

  before(async () => {
    nat = await natLab();
    const { lab } = nat;
    siteHttp = await startUpstream('http', { group: lab.group, netns: lab.ns('site'), listen: `${nat.site.ip}:8080`, body: 'in-site' });
    publicHttp = await startUpstream('http', { group: lab.group, netns: lab.ns('public'), listen: `${nat.public.ip}:8080`, body: 'in-public' });
    sshd = await startSshd({ group: lab.group, netns: lab.ns('site'), host: nat.site.ip });
  });
  after(() => nat?.destroy());

  const curl = (host: string, url: string) =>
    nat.lab.exec(host, 'curl', ['-sS', '--max-time', '5', '-D', '-', url], { timeoutMs: 10_000 });

  it('a site host reaches an upstream in its own site', async () => {
    const r = await curl('site', `http://${siteHttp.address}/`);
    assert.equal(r.code, 0, r.stderr);
    const { status, body } = parseCurl(r.stdoutBytes);
    assert.equal(status, 200);
    assert.match(body.toString(), /marker=in-site/);
  });

  it('a site host reaches public through the NAT, seen as the router', async () => {
    const r = await curl('site', `http://${publicHttp.address}/bytes?n=300000`);
    assert.equal(r.code, 0, r.stderr);
    const { headers, body } = parseCurl(r.stdoutBytes);
    assert.equal(headers.get('x-remote-addr'), nat.router.publicIp);
    assert.equal(body.length, 300_000);
    assert.equal(sha256Hex(body), headers.get('x-sha256'));
    assert.equal(headers.get('x-sha256'), seededSha256('0', 300_000));
  });

  it('public cannot open a connection to a site address (no route)', async () => {
    const r = await nat.lab.exec('public', process.execPath, ['-e', PROBE_CONNECT, nat.site.ip, '8080', '2000']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^(ENETUNREACH|EHOSTUNREACH|TIMEOUT)$/);
  });

  it('even with a route, the router drops connections from public into a site', async () => {
    await nat.lab.exec('public', 'ip', ['route', 'add', nat.site.subnet, 'via', nat.router.publicIp]);
    try {
      const r = await nat.lab.exec('public', process.execPath, ['-e', PROBE_CONNECT, nat.site.ip, '8080', '1000']);
      assert.equal(r.stdout.trim(), 'TIMEOUT');
    } finally {
      await nat.lab.exec('public', 'ip', ['route', 'del', nat.site.subnet]);
    }
  });

  it('a real sshd in the site answers ssh root@SITE hostname', async () => {
    for (const strict of [false, true]) {
      const r = await nat.lab.exec('site', 'ssh', [...sshd.sshArgs({ strict }), `root@${nat.site.ip}`, 'hostname'], {
        timeoutMs: 15_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), hostname());
    }
  });

  it('teardown leaves no namespace with the lab tag', async () => {
    const before = await run('ip', ['netns', 'list']);
    assert.match(before.stdout, new RegExp(nat.lab.tag));
    await nat.destroy();
    await nat.destroy(); // idempotent
    const afterDestroy = await run('ip', ['netns', 'list']);
    assert.doesNotMatch(afterDestroy.stdout, new RegExp(nat.lab.tag));
    assert.ok(sshd.child.exitCode !== null || sshd.child.signalCode !== null, 'sshd still running');
  });
});

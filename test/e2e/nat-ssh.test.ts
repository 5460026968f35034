// Acceptance: real OpenSSH to a node behind NAT whose only connectivity is the agent it runs.
//
//   public 10.10.0.1 (hub :8443, ssh/scp clients)  ──  router (MASQUERADE, drops inbound)  ──  node1 10.20.1.2 (agent node1, sshd :22)
//
// `ssh -o ProxyCommand='warren connect %h:%p' root@node1` from `public` must land in node1's network
// namespace (checked by its address and namespace inode, not by hostname: namespaces share the UTS
// name), and scp must carry 64 MiB there and back bit for bit.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { natLab, type NatLab } from '../support/netns.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import { accessToken, cli, joinToken, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';
import { waitForAudit, type AuditRow } from '../support/audit.js';

const HUB_PORT = 8443;
const SCP_BYTES = 64 * 1024 * 1024;

// Run inside a namespace: reports how a TCP connect ends (CONNECTED, an errno code, or TIMEOUT).
const PROBE_CONNECT = `
const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, Number(ms));
s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });
`;

function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Writes `n` random bytes to `file` in 1 MiB chunks and returns their sha256. */
function writeRandomFile(file: string, n: number): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = n; left > 0; left -= 1 << 20) {
      const chunk = randomBytes(Math.min(left, 1 << 20));
      hash.update(chunk);
      fs.writeSync(fd, chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}



describe('ssh and scp to a node behind NAT through `warren connect`', () => {
  let nat: NatLab;
  let hub: HubProc;
  let sshd: Sshd;
  let agentDir: string;
  let userEnv: NodeJS.ProcessEnv;
  const work = tempDir('nat-ssh');

  before(async () => {
    nat = await natLab({ sites: ['node1'] });
    const { lab } = nat;
    hub = await startHub({
      group: lab.group,
      netns: lab.ns('public'),
      listen: `${nat.public.ip}:${HUB_PORT}`,
      publicUrl: `https://${nat.public.ip}:${HUB_PORT}`,
    });
    // The join token is created in `public` (the hub's namespace); the agent dials it from behind the NAT.
    const token = await joinToken(hub);
    const agent = await startAgent({ group: lab.group, hub, name: 'node1', token, netns: lab.ns('node1') });
    agentDir = agent.dataDir;
    sshd = await startSshd({ group: lab.group, netns: lab.ns('node1'), host: '0.0.0.0' });

    const userToken = await accessToken(hub, 'ops-ana');
    const g = await cli(hub, ['grant', '--user', 'ops-ana', '--agent', 'node1', '--ports', '22']);
    assert.equal(g.code, 0, g.stderr);
    userEnv = hub.env(userToken);
  });

  after(async () => {
    await nat?.destroy();
    for (const d of [work, hub?.dataDir, agentDir, sshd?.dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  const proxyCommand = `ProxyCommand=${process.execPath} ${WARREN_BIN} connect %h:%p`;
  const ssh = (args: string[], timeoutMs = 30_000) =>
    nat.lab.exec('public', 'ssh', [...sshd.sshArgs(), '-o', proxyCommand, ...args], { env: userEnv, timeoutMs });
  const scp = (args: string[], timeoutMs = 90_000) =>
    nat.lab.exec('public', 'scp', ['-q', ...sshd.sshArgs(), '-o', proxyCommand, ...args], { env: userEnv, timeoutMs });

  it('public cannot reach the node directly', async () => {
    const probe = await nat.lab.exec('public', process.execPath, ['-e', PROBE_CONNECT, nat.site.ip, '22', '2000']);
    assert.equal(probe.code, 0, probe.stderr);
    assert.match(probe.stdout.trim(), /^(ENETUNREACH|EHOSTUNREACH|TIMEOUT)$/);
    const direct = await nat.lab.exec('public', 'ssh', ['-o', 'ConnectTimeout=3', ...sshd.sshArgs(), `root@${nat.site.ip}`, 'true'], { timeoutMs: 15_000 });
    assert.notEqual(direct.code, 0, 'ssh straight to the site address must fail');
  });

  it("ssh -o ProxyCommand='warren connect %h:%p' root@node1 runs in the node's namespace", async () => {
    const siteNs = (await nat.lab.exec('node1', 'readlink', ['/proc/self/ns/net'])).stdout.trim();
    const publicNs = (await nat.lab.exec('public', 'readlink', ['/proc/self/ns/net'])).stdout.trim();
    assert.match(siteNs, /^net:\[\d+\]$/);
    assert.notEqual(siteNs, publicNs);

    const r = await ssh(['root@node1', 'readlink /proc/self/ns/net; ip -4 -o addr show']);
    assert.equal(r.code, 0, r.stderr);
    const [remoteNs, ...addrLines] = r.stdout.trim().split('\n');
    assert.equal(remoteNs, siteNs, 'the remote shell runs in the node1 namespace');
    assert.ok(addrLines.some((l) => l.includes(` ${nat.site.ip}/24 `)), `node1's address in:\n${r.stdout}`);
    assert.ok(!r.stdout.includes(nat.public.ip), 'the hub address is not local there');

    // The stream was audited as the user's, through agent node1, to its own sshd.
    // Result "ok", not "error: aborted: read ECONNRESET": ssh SIGHUPs its ProxyCommand on exit, and
    // `warren connect` must finish the close rather than die with the hub's last bytes unread.
    await waitForAudit(hub, (row) => row.user === 'ops-ana' && row.agent === 'node1' && row.target === 'node1:22' && row.result === 'ok', 'the ssh stream');
  });

  it('scp carries a 64 MiB random file to the node and back with the same sha256', async () => {
    // The namespaces share one filesystem, so "on the node" is a path in the same tree; what matters is
    // that every byte went through ssh, `warren connect`, the hub, the tunnel and the agent.
    const local = path.join(work, 'up.bin');
    const remote = path.join(work, 'on-node1.bin');
    const back = path.join(work, 'back.bin');
    const sha = writeRandomFile(local, SCP_BYTES);

    const up = await scp([local, `root@node1:${remote}`]);
    assert.equal(up.code, 0, up.stderr);
    // Hashed on the node itself, over ssh, before it comes back.
    const remoteSum = await ssh(['root@node1', `sha256sum ${remote}`]);
    assert.equal(remoteSum.code, 0, remoteSum.stderr);
    assert.equal(remoteSum.stdout.split(/\s+/)[0], sha);

    const down = await scp([`root@node1:${remote}`, back]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(fs.statSync(back).size, SCP_BYTES);
    assert.equal(sha256File(back), sha);

    // The hub writes a stream's audit row when its relay finishes, which may be just after scp exits.
    const big = (row: AuditRow) => row.target === 'node1:22' && row.result === 'ok';
    await waitForAudit(hub, (row) => big(row) && (row.bytesIn ?? 0) > SCP_BYTES, 'an upload stream of > 64 MiB');
    await waitForAudit(hub, (row) => big(row) && (row.bytesOut ?? 0) > SCP_BYTES, 'a download stream of > 64 MiB');
  });

  it('ssh ControlMaster (docs/ssh-and-ansible.md): later sessions reuse the first one\'s stream, one `warren connect` for all', async () => {
    const streams = async () => {
      const r = await cli(hub, ['audit', '-o', 'json', '--kind', 'stream']);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as AuditRow[]).filter((row) => row.user === 'ops-ana' && row.target === 'node1:22');
    };
    const before = await streams();
    const control = ['-o', 'ControlMaster=auto', '-o', `ControlPath=${path.join(work, 'cm-%C')}`, '-o', 'ControlPersist=60'];
    for (const word of ['one', 'two', 'three']) {
      const r = await ssh([...control, 'root@node1', `echo ${word}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${word}\n`);
    }
    const check = await ssh([...control, '-O', 'check', 'root@node1']);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stderr, /Master running/);
    const exit = await ssh([...control, '-O', 'exit', 'root@node1']);
    assert.equal(exit.code, 0, exit.stderr);
    // The master's one stream closes with it: one row, and no other stream for the three sessions.
    const known = new Set(before.map((row) => row.id));
    await waitForAudit(hub, (row) => !known.has(row.id) && row.user === 'ops-ana' && row.target === 'node1:22' && row.result === 'ok', 'the master\'s stream');
    assert.equal((await streams()).length, before.length + 1);
  });
});

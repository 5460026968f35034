// The HTTP CONNECT door on a unix socket (`warren hub --connect-uds PATH`), for co-located clients such
// as a kube-apiserver egress selector (Konnectivity's UDS mode): plain HTTP CONNECT, no credentials,
// access by the socket file's permissions (0660). Whoever connects is user "uds" in group warren:uds,
// and reaches only what a grant allows (default deny). A stale socket file from a hub that died is
// replaced; a live one or a file that is not a socket is refused; the file goes away with the hub.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { RouteExplanation } from '../../src/hub/routeExplain.js';
import { waitForAudit } from '../support/audit.js';
import { ChildGroup, run, waitForLine, withDeadline } from '../support/proc.js';
import { sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { cli, cliJson, startAgent, startHub, stopProcess, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

interface Answer {
  status: number;
  head: string;
  /** Everything after the header, until the hub or the target closed. */
  rest: Buffer;
}

/** CONNECT over the unix socket; after a 200 writes `payload` and half-closes, then reads to the end. */
function connectUds(socketPath: string, target: string, payload?: string): Promise<Answer> {
  return withDeadline(
    new Promise<Answer>((resolve, reject) => {
      const socket = net.connect({ path: socketPath, allowHalfOpen: true }, () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
      let all = Buffer.alloc(0);
      let sent = false;
      socket.on('data', (c: Buffer) => {
        all = Buffer.concat([all, c]);
        const end = all.indexOf('\r\n\r\n');
        if (!sent && end >= 0 && / 200 /.test(all.subarray(0, end).toString('latin1')) && payload !== undefined) {
          sent = true;
          socket.end(payload);
        }
      });
      socket.on('error', reject);
      socket.on('end', () => {
        socket.destroy();
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return reject(new Error(`no HTTP answer: ${JSON.stringify(all.toString('latin1'))}`));
        const head = all.subarray(0, end).toString('latin1');
        resolve({ status: Number(head.split(' ')[1]), head, rest: all.subarray(end + 4) });
      });
    }),
    15_000,
    `CONNECT ${target} over ${socketPath}`,
  );
}

describe('HTTP CONNECT on a unix socket (--connect-uds)', () => {
  const procs = new ChildGroup();
  const dir = tempDir('uds');
  const socketPath = path.join(dir, 'connect.sock');
  let hub: HubProc;
  let halfclose: Upstream;
  let target: string;
  const dirs = [dir];

  before(async () => {
    // A stale socket file: bound by a process that is then killed -9 (nothing unlinks it).
    const holder = procs.spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('bound'))`]);
    await waitForLine(holder, /^bound$/, { timeoutMs: 10_000 });
    process.kill(holder.pid!, 'SIGKILL');
    await withDeadline(once(holder, 'exit'), 5_000, 'the killed socket holder exiting');
    assert.ok(fs.lstatSync(socketPath).isSocket(), 'the stale socket file is there');

    hub = await startHub({ group: procs, args: ['--connect-uds', socketPath] });
    dirs.push(hub.dataDir);
    const agent = await startAgent({ group: procs, hub, name: 'site1' });
    dirs.push(agent.dataDir);
    halfclose = await startUpstream('halfclose', { group: procs, listen: '127.0.0.1:0' });
    target = `site1:${halfclose.port}`;
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('replaces the stale file with a socket of mode 0660', () => {
    const st = fs.lstatSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
  });

  it('default deny: without a grant for group warren:uds the CONNECT gets 403', async () => {
    const a = await connectUds(socketPath, target);
    assert.equal(a.status, 403, a.head);
    assert.equal(JSON.parse(a.rest.toString()).code, 'WARREN_E_FORBIDDEN');
    const e = await cliJson<RouteExplanation>(hub, ['route', 'explain', target, '--user', 'uds', '--groups', 'warren:uds']);
    assert.equal(e.grantText, 'no grant');
  });

  it('with a grant for group warren:uds the stream works, half-close included, and is audited as uds', async () => {
    const g = await cli(hub, ['grant', '--group', 'warren:uds', '--agent', 'site1', '--ports', String(halfclose.port)]);
    assert.equal(g.code, 0, g.stderr);
    const a = await connectUds(socketPath, target, 'from a co-located client');
    assert.equal(a.status, 200, a.head);
    assert.equal(a.rest.toString(), `got 24 bytes sha256=${sha256Hex('from a co-located client')}\n`);
    const row = await waitForAudit(hub, (r) => r.door === 'uds' && r.result === 'ok', 'the uds stream');
    assert.equal(row.user, 'uds');
    assert.equal(row.agent, 'site1');
    assert.equal(row.target, target);
    assert.equal((row as { source?: string | null }).source, 'unix', 'a unix-socket peer has no address to show');
  });

  it('anything but CONNECT gets 405', async () => {
    const r = await run('curl', ['-sS', '--max-time', '10', '--unix-socket', socketPath, 'http://hub/'], { timeoutMs: 20_000 });
    assert.match(r.stdout, /WARREN_E_METHOD_NOT_ALLOWED/);
  });

  it('a second hub refuses a socket that is in use, and a path that is not a socket', async () => {
    const other = tempDir('uds-hub2');
    dirs.push(other);
    const inUse = await run(process.execPath, [WARREN_BIN, 'hub', '--listen', '127.0.0.1:0', '--data-dir', other, '--connect-uds', socketPath], { timeoutMs: 20_000 });
    assert.equal(inUse.code, 1, inUse.stderr);
    assert.match(inUse.stderr, /in use by another process/);
    const plain = path.join(other, 'plain-file');
    fs.writeFileSync(plain, 'keep me');
    const notSocket = await run(process.execPath, [WARREN_BIN, 'hub', '--listen', '127.0.0.1:0', '--data-dir', other, '--connect-uds', plain], { timeoutMs: 20_000 });
    assert.equal(notSocket.code, 1, notSocket.stderr);
    assert.match(notSocket.stderr, /not a socket/);
    assert.equal(fs.readFileSync(plain, 'utf8'), 'keep me');
  });

  it('the socket file is removed when the hub stops', async () => {
    await stopProcess(hub.child, 'SIGTERM');
    assert.equal(fs.existsSync(socketPath), false);
  });
});

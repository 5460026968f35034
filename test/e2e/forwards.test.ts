// Acceptance: TCP forwards (`warren forwards`). Real hub and two agents on loopback: agent "fwa" holds
// the agent-side entry, agent "fwb" reaches the targets, so an agent-side connection really goes
// fwa → hub (uplink, warren-up/1) → fwb (tunnel) → target. A hub forward and an agent-side forward each
// carry 64 MiB with equal sha256 and an echo with half-close; allow-from refuses and audits; a bind
// failure is state, not a crash; both forwards come back after a hub restart (the agent reconnects by
// itself and gets its listeners pushed again); deleting one closes its listener within 1 s.
// No forward has a grant: a forward runs as `forward:NAME`, scoped to exactly its own target.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, eventually, outputTail, waitForExit, withDeadline } from '../support/proc.js';
import { cli, cliJson, restartHub, startAgent, startHub, type AgentProc, type HubProc } from '../support/warren.js';
import { sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { errorAfterEof, mbPerSec, readAll, writeSeeded } from '../support/connectClient.js';
import { hubRequest, jsonOrThrow } from '../../src/client/hubHttp.js';
import { dialHub } from '../../src/tunnel/dialHub.js';
import http2 from 'node:http2';
import path from 'node:path';

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const ENTRY_AGENT = 'fwa';
const TARGET_AGENT = 'fwb';

interface ForwardView {
  name: string; entry: string; agent: string | null; target: string; allowFrom: string[]; listening: boolean; address: string | null;
  openStreams: number; connections: number; bytesIn: number; bytesOut: number; lastError: { code: string; message: string } | null;
}

interface AuditRow { user: string | null; door: string | null; target: string | null; result: string; reason: string | null; source: string | null }

const portOf = (f: ForwardView) => Number(f.address!.split(':').pop());

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
    s.once('connect', () => (s.off('error', reject), resolve(s)));
    s.once('error', reject);
  });
}

/** Sends `n` seeded bytes to the sink behind a forward, half-closes, and reads the sink's sha256 answer. */
async function throughSink(port: number, seed: string, n: number) {
  const s = await dial(port);
  const started = performance.now();
  const answer = readAll(s);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  const sent = await writeSeeded(s, seed, n);
  const got = await answer;
  s.destroy();
  return { sent, received: Buffer.concat(chunks).toString('utf8').trim(), clean: got.clean, ms: performance.now() - started };
}

/** Echo with half-close: everything sent comes back, and the far end ends only after our EOF. */
async function echoRoundTrip(port: number, data: Buffer): Promise<{ sha: string; bytes: number; clean: boolean }> {
  const s = await dial(port);
  const got = readAll(s);
  s.end(data);
  const r = await got;
  s.destroy();
  return { sha: r.sha256, bytes: r.bytes, clean: r.clean };
}

/** What a connection to a refused or closed entry sees: 'refused' (nothing listens) or 'reset' / 'closed' (accepted, then cut). */
function probe(port: number): Promise<'refused' | 'reset' | 'closed' | 'data'> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('data', () => (s.destroy(), resolve('data')));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'reset'));
    s.once('close', () => resolve('closed'));
    // end(), not write(): a sink answers only after EOF, and a listener that is up must answer something.
    s.once('connect', () => s.end('hello?'));
  });
}

describe('TCP forwards', () => {
  const procs = new ChildGroup();
  let hub: HubProc;
  let agents: AgentProc[] = [];
  let sink: Upstream;
  let echo: Upstream;
  let hubSink: ForwardView;
  let agentSink: ForwardView;
  let hubEcho: ForwardView;
  let agentEcho: ForwardView;

  const create = async (name: string, entry: string, target: string, allowFrom?: string) => {
    const started = performance.now();
    const f = await cliJson<ForwardView>(hub, ['forwards', 'create', name, '--entry', entry, '--target', target, ...(allowFrom ? ['--allow-from', allowFrom] : [])]);
    return { f, ms: performance.now() - started };
  };
  const ls = () => cliJson<ForwardView[]>(hub, ['forwards', 'ls']);
  const one = async (name: string) => (await ls()).find((f) => f.name === name)!;

  before(async () => {
    hub = await startHub({ group: procs });
    const reconnect = ['--reconnect-max', '1s', '--ping-interval', '2s'];
    agents = await Promise.all([ENTRY_AGENT, TARGET_AGENT].map((name) => startAgent({ group: procs, hub, name, args: reconnect })));
    sink = await startUpstream('sink', { group: procs, listen: '127.0.0.1:0' });
    echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of [hub?.dataDir, ...agents.map((a) => a.dataDir)]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('create answers once the entry listens, on the hub and on an agent', async (t) => {
    const created = await Promise.all([
      create('h-sink', 'hub:127.0.0.1:0', `${TARGET_AGENT}:${sink.port}`),
      create('a-sink', `${ENTRY_AGENT}:127.0.0.1:0`, `${TARGET_AGENT}:${sink.port}`),
      create('h-echo', 'hub:127.0.0.1:0', `${TARGET_AGENT}:${echo.port}`),
      create('a-echo', `${ENTRY_AGENT}:127.0.0.1:0`, `${TARGET_AGENT}:${echo.port}`),
    ]);
    [hubSink, agentSink, hubEcho, agentEcho] = created.map((c) => c.f) as [ForwardView, ForwardView, ForwardView, ForwardView];
    for (const { f, ms } of created) {
      assert.equal(f.listening, true, `${f.name}: ${JSON.stringify(f.lastError)}`);
      assert.ok(portOf(f) > 0);
      t.diagnostic(`${f.name}: listening on ${f.address} ${Math.round(ms)} ms after the command started`);
    }
    assert.equal(agentSink.agent, ENTRY_AGENT);
    assert.equal(hubSink.agent, null);
    // Live at once: the first connection right after the command returns is carried.
    const r = await echoRoundTrip(portOf(agentEcho), Buffer.from('first'));
    assert.equal(r.bytes, 5);
  });

  for (const [label, pick] of [['hub', () => hubSink], ['agent-side', () => agentSink]] as const) {
    it(`a ${label} forward carries 64 MiB with equal sha256`, { timeout: 180_000 }, async (t) => {
      const { sent, received, clean, ms } = await withDeadline(throughSink(portOf(pick()), `fw-${label}`, BIG), 170_000, `64 MiB through the ${label} forward`);
      assert.ok(clean, 'the sink answered and ended cleanly');
      assert.equal(received, sent, 'sha256 at the target differs from what was sent');
      t.diagnostic(`${label} forward 64 MiB: ${mbPerSec(BIG, ms)} MB/s (${Math.round(ms)} ms)`);
    });
  }

  it('echo with half-close: the whole answer arrives after the client shut its write side (hub and agent-side)', async () => {
    const data = randomBytes(4 * MiB + 7);
    for (const f of [hubEcho, agentEcho]) {
      const r = await withDeadline(echoRoundTrip(portOf(f), data), 60_000, `echo through ${f.name}`);
      assert.ok(r.clean, `${f.name}: ended cleanly`);
      assert.equal(r.bytes, data.length, `${f.name}: byte count`);
      assert.equal(r.sha, sha256Hex(data), `${f.name}: sha256`);
    }
  });

  it('`forwards ls -o json` shows listening, bytes in/out and open streams', async () => {
    const rows = await eventually('open streams back to 0', 10_000, async () => {
      const all = await ls();
      return all.every((f) => f.openStreams === 0) ? all : undefined;
    });
    const h = rows.find((f) => f.name === 'h-sink')!;
    const a = rows.find((f) => f.name === 'a-sink')!;
    for (const f of [h, a]) {
      assert.equal(f.listening, true);
      assert.equal(f.bytesIn, BIG, `${f.name}: bytesIn`);
      assert.equal(f.bytesOut, 65, `${f.name}: bytesOut (64 hex digits and a newline)`);
      assert.equal(f.connections, 1);
      assert.equal(f.lastError, null);
    }
    assert.equal(a.entry, `${ENTRY_AGENT}:127.0.0.1:${portOf(agentSink)}`, 'a port-0 entry shows the port it got');
    const table = await cli(hub, ['forwards', 'ls']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+KIND\s+ENTRY\s+TARGET\s+LISTENING/);
  });

  it('a connection from outside --allow-from is closed at once and audited as denied (hub and agent-side)', async () => {
    const { f: hubDeny } = await create('h-deny', 'hub:127.0.0.1:0', `${TARGET_AGENT}:${echo.port}`, '10.99.0.0/16');
    const { f: agentDeny } = await create('a-deny', `${ENTRY_AGENT}:127.0.0.1:0`, `${TARGET_AGENT}:${echo.port}`, '10.99.0.0/16,192.0.2.1');
    assert.deepEqual(agentDeny.allowFrom, ['10.99.0.0/16', '192.0.2.1/32']);
    for (const f of [hubDeny, agentDeny]) {
      const seen = await withDeadline(probe(portOf(f)), 5_000, `connecting to ${f.name}`);
      assert.ok(seen === 'reset' || seen === 'closed', `${f.name}: got ${seen}`);
      const row = await eventually(`a denied audit row for ${f.name}`, 10_000, async () => {
        const rows = await cliJson<AuditRow[]>(hub, ['audit', '--kind', 'stream', '--user', `forward:${f.name}`, '--since', '10m']);
        return rows.find((r) => r.result === 'denied');
      });
      assert.equal(row.door, 'forward');
      assert.match(row.reason ?? '', /WARREN_E_FORBIDDEN: .*allow-from/);
      assert.match(row.source ?? '', /^127\.0\.0\.1:\d+/);
      assert.equal((await one(f.name)).connections, 0, 'nothing was carried');
    }
    // Carried connections were audited too, with the forward's own principal and door.
    const ok = await cliJson<AuditRow[]>(hub, ['audit', '--kind', 'stream', '--user', 'forward:a-sink', '--since', '10m']);
    assert.ok(ok.some((r) => r.result === 'ok' && r.door === 'forward' && r.target === `${TARGET_AGENT}:${sink.port}` && /via agent fwa/.test(r.source ?? '')), JSON.stringify(ok));
  });

  it('a port already in use is the forward last error, not a crash (hub and agent-side)', async () => {
    // (another program's port: the hub's own ports are refused when the forward is created, see traps.test.ts)
    const { f: h } = await create('h-busy', `hub:127.0.0.1:${echo.port}`, `${TARGET_AGENT}:${echo.port}`);
    const { f: a } = await create('a-busy', `${ENTRY_AGENT}:127.0.0.1:${hub.port}`, `${TARGET_AGENT}:${echo.port}`);
    for (const f of [h, a]) {
      assert.equal(f.listening, false, f.name);
      assert.equal(f.lastError?.code, 'WARREN_E_LISTEN_FAILED', f.name);
      assert.match(f.lastError.message, /address is in use/);
    }
    const tableOut = await cli(hub, ['forwards', 'create', 'h-busy2', '--entry', `hub:127.0.0.1:${sink.port}`, '--target', 'x:1']);
    assert.equal(tableOut.code, 0, tableOut.stderr);
    assert.match(tableOut.stdout, /created, not listening yet: cannot listen on 127\.0\.0\.1:\d+: the address is in use/);
    // The hub and the agent are still serving.
    assert.equal((await echoRoundTrip(portOf(agentEcho), Buffer.from('still here'))).bytes, 10);
    for (const name of ['h-busy', 'a-busy', 'h-busy2']) assert.equal((await cli(hub, ['forwards', 'rm', name])).code, 0);
  });

  it('through the API (no CLI start-up in the way) a forward listens, and is gone, well within 1 s (hub and agent-side)', async (t) => {
    const ep = { url: new URL(hub.url), ca: fs.readFileSync(hub.caPath, 'utf8') };
    for (const [name, entry] of [['h-quick', 'hub:127.0.0.1:0'], ['a-quick', `${ENTRY_AGENT}:127.0.0.1:0`]] as const) {
      let started = performance.now();
      const f = jsonOrThrow<ForwardView>(await hubRequest(ep, 'POST', '/api/v1/forwards', { token: hub.adminToken, body: { name, entry, target: `${TARGET_AGENT}:${echo.port}` } }));
      const up = await echoRoundTrip(portOf(f), Buffer.from('quick'));
      const createMs = performance.now() - started;
      assert.equal(up.bytes, 5, `${name} carried its first connection`);
      started = performance.now();
      jsonOrThrow(await hubRequest(ep, 'DELETE', `/api/v1/forwards/${name}`, { token: hub.adminToken }));
      assert.equal(await probe(portOf(f)), 'refused');
      const deleteMs = performance.now() - started;
      t.diagnostic(`${name}: create → first connection carried ${Math.round(createMs)} ms; delete → refused ${Math.round(deleteMs)} ms`);
      assert.ok(createMs < 1000 && deleteMs < 1000, `${name}: ${createMs} / ${deleteMs} ms`);
    }
  });

  it('the hub takes an uplink stream for a forward only from that forward\'s entry agent, and uplinks only with an agent certificate', async () => {
    const url = new URL(hub.url);
    const ca = fs.readFileSync(hub.caPath, 'utf8');
    const certOf = (name: string) => {
      const dir = agents.find((a) => a.options.name === name)!.dataDir;
      return { cert: fs.readFileSync(path.join(dir, 'agent.crt'), 'utf8'), key: fs.readFileSync(path.join(dir, 'agent.key'), 'utf8') };
    };
    /** Opens an uplink as `who` (an agent's certificate, or none) and asks for forward `name`; resolves with the answer. */
    const ask = async (who: string | undefined, name: string, port: number) => {
      const socket = await dialHub({ url, ca, ...(who ? certOf(who) : {}) }, { alpn: ['warren-up/1'] });
      // The hub may drop a refused uplink before http2 gets the socket, and a session over a socket that
      // is already closed never reports anything: watch the socket itself too.
      const socketClosed = new Promise<{ status: number }>((resolve) => {
        if (socket.destroyed || socket.readableEnded) return resolve({ status: 0 });
        socket.once('end', () => resolve({ status: 0 }));
        socket.once('close', () => resolve({ status: 0 }));
      });
      const session = http2.connect(url.origin, { createConnection: () => socket });
      session.on('error', () => undefined);
      try {
        return await withDeadline(
          Promise.race([socketClosed, new Promise<{ status: number; code?: string }>((resolve) => {
            const req = session.request({ ':method': 'CONNECT', ':authority': `${name}:${port}`, 'warren-source': '127.0.0.1:1' });
            req.on('error', () => undefined);
            req.once('response', (h) => (resolve({ status: Number(h[':status']), code: h['warren-error'] as string | undefined }), req.close()));
            req.once('close', () => resolve({ status: 0 }));
            session.once('close', () => resolve({ status: 0 }));
          })]),
          10_000,
          `uplink CONNECT ${name} as ${who ?? 'nobody'}`,
        );
      } finally {
        session.destroy();
      }
    };
    assert.deepEqual(await ask(TARGET_AGENT, agentEcho.name, portOf(agentEcho)), { status: 403, code: 'WARREN_E_FORBIDDEN' }, 'another agent cannot borrow the entry');
    assert.deepEqual(await ask(ENTRY_AGENT, hubEcho.name, portOf(hubEcho)), { status: 403, code: 'WARREN_E_FORBIDDEN' }, 'a hub entry has no agent side');
    assert.deepEqual(await ask(ENTRY_AGENT, 'no-such', 1), { status: 403, code: 'WARREN_E_FORBIDDEN' });
    assert.equal((await ask(ENTRY_AGENT, agentEcho.name, portOf(agentEcho))).status, 200, 'the entry agent itself is carried');
    assert.equal((await ask(undefined, agentEcho.name, portOf(agentEcho))).status, 0, 'no certificate: the hub drops the uplink');
    const denied = await cliJson<AuditRow[]>(hub, ['audit', '--kind', 'stream', '--user', `forward:${agentEcho.name}`, '--since', '10m']);
    assert.ok(denied.some((r) => r.result === 'denied' && /has no entry on agent "fwb"/.test(r.reason ?? '')), JSON.stringify(denied));
  });

  it('usage errors exit 2 before the hub is asked; a duplicate name is a conflict', async () => {
    for (const args of [
      ['forwards', 'create', 'Bad_Name', '--entry', 'hub:0', '--target', 'a:1'],
      ['forwards', 'create', 'x', '--entry', 'hub:http', '--target', 'a:1'],
      ['forwards', 'create', 'x', '--entry', 'hub:0', '--target', 'nope'],
      ['forwards', 'create', 'x', '--entry', 'hub:0', '--target', 'a:1', '--allow-from', '10.0.0.0/99'],
    ]) {
      const r = await cli(hub, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const dup = await cli(hub, ['forwards', 'create', 'h-sink', '--entry', 'hub:0', '--target', 'a:1']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /WARREN_E_CONFLICT/);
  });

  it('both come back after a hub restart, on the same ports (the agent gets its listeners pushed again)', { timeout: 90_000 }, async (t) => {
    const stopping = performance.now();
    hub = await restartHub(hub);
    const started = performance.now();
    t.diagnostic(`hub stopped (SIGTERM, drain) and started again in ${Math.round(started - stopping)} ms`);
    const back = await eventually('both forwards listening after the restart', 60_000, async () => {
      const [h, a] = [await one('h-sink'), await one('a-sink')];
      return h.listening && a.listening ? { h, a } : undefined;
    }, 200);
    t.diagnostic(`agent-side forward listening again ${Math.round(performance.now() - started)} ms after the hub was up`);
    assert.equal(back.h.address, hubSink.address);
    assert.equal(back.a.address, agentSink.address);
    for (const f of [hubSink, agentSink]) {
      const { sent, received } = await withDeadline(throughSink(portOf(f), `again-${f.name}`, 4 * MiB), 60_000, `through ${f.name} after restart`);
      assert.equal(received, sent, `${f.name}: sha256 after restart`);
    }
  });

  it('an entry agent stopped (SIGTERM) with a connection still open resets it when its drain is up, never a FIN', async () => {
    // The agent's process exits right after its stop: a connection it left to the kernel would end with
    // a FIN, and a client would take a cut-off stream for a complete one.
    const entry = await startAgent({ group: procs, hub, name: 'fw-stopping', args: ['--drain-timeout', '300ms'] });
    agents.push(entry);
    const { f } = await create('s-echo', 'fw-stopping:127.0.0.1:0', `${TARGET_AGENT}:${echo.port}`);
    assert.equal(f.listening, true, JSON.stringify(f.lastError));
    const s = net.connect({ host: '127.0.0.1', port: portOf(f), allowHalfOpen: true });
    await withDeadline(new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject)), 5_000, 'connecting to the entry');
    s.write('open');
    await withDeadline(new Promise((resolve) => s.once('data', resolve)), 10_000, 'the echo through the entry');
    const outcome = new Promise<string>((resolve) => {
      s.on('data', () => undefined);
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      // An RST can be read as an end (docs/reliability.md); a write after it then fails.
      s.once('end', () => void errorAfterEof(s).then((err) => resolve(err ? `end, then ${(err).code}` : 'a clean end (FIN)')));
    });
    entry.child.kill('SIGTERM');
    const got = await withDeadline(outcome, 15_000, 'the entry connection ending');
    await waitForExit(entry.child, 15_000);
    assert.match(got, /ECONNRESET/, outputTail(entry.child, 30).join('\n'));
    s.destroy();
  });

  it('deleting a forward closes its listener within 1 s (hub and agent-side)', async (t) => {
    for (const f of [hubSink, agentSink]) {
      assert.equal(await withDeadline(probe(portOf(f)), 10_000, `probing ${f.name}`), 'data', `${f.name} carries before rm`);
      const r = await cli(hub, ['forwards', 'rm', f.name]);
      assert.equal(r.code, 0, r.stderr);
      const returned = performance.now();
      await eventually(`${f.name}'s port refusing connections`, 1_000, async () => ((await probe(portOf(f))) === 'refused' ? true : undefined), 10);
      t.diagnostic(`${f.name}: refused ${Math.round(performance.now() - returned)} ms after \`forwards rm\` returned`);
      assert.equal((await ls()).some((x) => x.name === f.name), false);
    }
    const gone = await cli(hub, ['forwards', 'rm', hubSink.name]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /WARREN_E_NOT_FOUND/);
  });
});

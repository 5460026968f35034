// Acceptance: what users see when things go wrong. A dead agent breaks its streams loudly and fast; a
// restarted hub gets its agents back without help; a removed agent is cut off at once and stays out;
// join tokens that are expired, used up, aimed at someone else's name or tampered with are refused with
// their own error code; and one stalled reader does not slow the other streams of its tunnel.
// Real hub and agent processes on loopback (keepalive every second on both), real upstreams.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, waitForExit, withDeadline, type ExitResult } from '../support/proc.js';
import { WARREN_BIN, cli, cliJson, restartHub, startAgent, startHub, tempDir, type HubProc } from '../support/warren.js';
import { seededSha256, startUpstream } from '../support/upstreams.js';
import { connectThroughHub, errorAfterEof, mbPerSec, readAll } from '../support/connectClient.js';

const MiB = 1024 * 1024;
const PING_MS = 1000;
const PING = ['--ping-interval', `${PING_MS / 1000}s`];
/** The hub's drain on SIGTERM: short, so a restart with a stream in flight does not wait 10 s. */
const DRAIN = ['--drain-timeout', '2s'];

interface AgentRow {
  name: string;
  connected: boolean;
  streamsOpen: number;
}

/**
 * Lines a child prints from now on (the support module's waitForLine also matches past lines, which
 * cannot tell a "rejoined" line from an earlier one).
 */
function watchLines(child: ChildProcess) {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  const onData = (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return {
    lines,
    /** Resolves with the first new line matching `re`; rejects after `timeoutMs`. */
    waitFor(re: RegExp, timeoutMs: number): Promise<string> {
      const found = new Promise<string>((resolve) => {
        const check = () => {
          const hit = lines.find((l) => re.test(l));
          if (hit !== undefined) {
            waiters.delete(check);
            resolve(hit);
          }
        };
        waiters.add(check);
        check();
      });
      return withDeadline(found, timeoutMs, `a new line matching ${re} (seen: ${lines.slice(-20).join('\n')})`);
    },
    stop() {
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
    },
  };
}

/** `warren agent` as a plain process (not waiting for a tunnel): for starts that must fail. */
function spawnAgent(procs: ChildGroup, name: string, opts: { token?: string; dataDir?: string } = {}): ChildProcess {
  const args = [WARREN_BIN, 'agent', '--name', name, '--data-dir', opts.dataDir ?? tempDir(`agent-${name}`), ...PING, ...(opts.token ? ['--token', opts.token] : [])];
  return procs.spawn(process.execPath, args, { env: { ...process.env, WARREN_LOG_LEVEL: 'debug' } });
}

function output(r: ExitResult): string {
  return `${r.stderr}\n${r.stdout}`;
}

/** Resolves once the wall clock is past `epochMs` (a wait on the clock itself, not a guessed sleep). */
async function clockPast(epochMs: number): Promise<void> {
  while (Date.now() <= epochMs) await new Promise((resolve) => setTimeout(resolve, epochMs - Date.now() + 1));
}

async function agentRow(hub: HubProc, name: string): Promise<AgentRow | undefined> {
  return (await cliJson<AgentRow[]>(hub, ['agents', 'ls'])).find((a) => a.name === name);
}

/** Reads `n` bytes from a `source` through the hub and returns the time taken (ms), checking the sha256. */
async function timedDownload(hub: HubProc, target: string, seed: string, n: number): Promise<number> {
  const socket = await connectThroughHub(hub, target);
  const got = await withDeadline(readAll(socket), 120_000, `download of ${n} bytes`);
  socket.end(() => socket.destroy());
  assert.ok(got.clean, `download did not end cleanly: ${got.error?.message ?? 'closed before EOF'}`);
  assert.equal(got.bytes, n);
  assert.equal(got.sha256, seededSha256(seed, n));
  return got.elapsedMs;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

describe('faults', () => {
  const procs = new ChildGroup();
  let hub: HubProc;

  before(async () => {
    hub = await startHub({ group: procs, args: [...PING, ...DRAIN] });
  });
  after(async () => {
    await procs.killAll();
    procs.dispose();
  });

  it('kill -9 of the agent mid-transfer ends the client stream with an error within 2 ping intervals', { timeout: 60_000 }, async (t) => {
    const agent = await startAgent({ group: procs, hub, name: 'doomed', args: PING });
    const n = 1024 * MiB;
    const source = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: n, seed: 'doomed' });
    const socket = await connectThroughHub(hub, `doomed:${source.port}`);
    let killedAt: number | undefined;
    const result = readAll(socket, (_chunk, total) => {
      if (killedAt === undefined && total >= 8 * MiB) {
        killedAt = performance.now();
        process.kill(agent.child.pid!, 'SIGKILL');
      }
    });
    const got = await withDeadline(result, 30_000, 'the client stream to end after the agent was killed');
    const endedAt = performance.now();
    // The hub resets the client's connection. Node's socket layer can report an RST that comes with the
    // last bytes as a clean end (errorAfterEof says why); the socket then still holds the reset's error.
    const afterEof = got.clean ? await withDeadline(errorAfterEof(socket), 10_000, 'the socket error after the EOF') : undefined;
    socket.destroy();
    assert.ok(killedAt !== undefined, 'the transfer ended before the agent could be killed');
    assert.ok(got.bytes < n, 'all bytes arrived although the agent was killed');
    if (got.clean) {
      t.diagnostic(`the client read the reset as an end after ${got.bytes} bytes; the socket then reported ${afterEof?.message}`);
      assert.equal(afterEof?.code, 'ECONNRESET', 'the stream cut by the kill ended with a FIN, not a reset');
    }
    // And the hub's side of it: the stream's audit row ends as an error, never as a finished one.
    const target = `doomed:${source.port}`;
    const row = await withDeadline((async () => {
      for (;;) {
        const rows = await cliJson<Array<{ target?: string; result: string }>>(hub, ['audit', '--kind', 'stream', '--since', '10m']);
        const found = rows.find((r) => r.target === target);
        if (found) return found;
      }
    })(), 30_000, 'the audit row of the stream cut by the kill');
    assert.equal(row.result, 'error', JSON.stringify(row));
    const afterKill = endedAt - killedAt;
    t.diagnostic(`client stream failed ${Math.round(afterKill)} ms after kill -9 (${got.error?.message ?? 'closed before EOF'}, ${got.bytes} bytes)`);
    assert.ok(afterKill < 2 * PING_MS, `the stream ended ${Math.round(afterKill)} ms after the kill (limit ${2 * PING_MS} ms)`);
    await source.stop();
  });

  it('a restarted hub (SIGTERM, same port and data dir) gets the agent back by itself; a new stream works', { timeout: 90_000 }, async (t) => {
    const agent = await startAgent({ group: procs, hub, name: 'steady', args: PING });
    const echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    // A stream open across the restart: cut off by the drain timeout, it must not look finished.
    const inFlight = await connectThroughHub(hub, `steady:${echo.port}`);
    const inFlightResult = readAll(inFlight);
    const log = watchLines(agent.child);
    try {
      const oldPort = hub.port;
      const started = performance.now();
      hub = await restartHub(hub);
      assert.equal(hub.port, oldPort);
      await log.waitFor(/"msg":"tunnel closed"/, 15_000);
      await log.waitFor(/"msg":"rejoined /, 30_000);
      t.diagnostic(`agent back ${Math.round(performance.now() - started)} ms after SIGTERM to the hub (drain ${DRAIN[1]} included)`);
    } finally {
      log.stop();
    }
    const cut = await withDeadline(inFlightResult, 5_000, 'the stream open across the restart to end');
    inFlight.destroy();
    assert.ok(!cut.clean, 'a stream cut off by the hub shutdown ended with a clean EOF');
    assert.equal(agent.child.exitCode, null, 'the agent process must reconnect, not exit');
    const row = await agentRow(hub, 'steady');
    assert.equal(row?.connected, true, `agents ls after the restart: ${JSON.stringify(row)}`);

    // A stream through the new hub: echo answers what we send (read back before half-closing).
    const socket = await connectThroughHub(hub, `steady:${echo.port}`);
    const payload = Buffer.from('after the restart\n'.repeat(1000));
    const back: Buffer[] = [];
    let got = 0;
    const echoed = new Promise<void>((resolve, reject) => {
      socket.on('data', (c: Buffer) => {
        back.push(c);
        if ((got += c.length) >= payload.length) resolve();
      });
      socket.once('error', reject);
      socket.once('close', () => reject(new Error(`stream closed after ${got} bytes`)));
    });
    socket.resume();
    socket.write(payload);
    await withDeadline(echoed, 10_000, 'the echo through the restarted hub');
    assert.deepEqual(Buffer.concat(back), payload);
    socket.end(() => socket.destroy());
  });

  it('agents rm drops the tunnel within 1 s; the agent exits non-zero saying it was removed and cannot come back', { timeout: 60_000 }, async (t) => {
    const agent = await startAgent({ group: procs, hub, name: 'revoked', args: PING });
    const echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    // A stream in flight: removal must not wait for it to finish.
    const socket = await connectThroughHub(hub, `revoked:${echo.port}`);
    const streamResult = readAll(socket);
    const exited = waitForExit(agent.child, 30_000);

    const rm = await cli(hub, ['agents', 'rm', 'revoked']);
    const removedAt = performance.now();
    assert.equal(rm.code, 0, `agents rm failed: ${rm.stderr}`);

    const exit = await exited;
    const exitMs = performance.now() - removedAt;
    assert.ok(exitMs < 1000, `the agent exited ${Math.round(exitMs)} ms after agents rm returned (limit 1000 ms)`);
    assert.notEqual(exit.code, 0, `the agent exited with code 0:\n${output(exit)}`);
    assert.match(output(exit), /removed/);
    assert.match(output(exit), /WARREN_E_AGENT_REVOKED/);

    t.diagnostic(`agent exited ${Math.round(exitMs)} ms after agents rm returned`);
    const stream = await withDeadline(streamResult, 1_000, 'the in-flight stream to end');
    assert.ok(!stream.clean, 'the stream through a removed agent ended with a clean EOF');
    socket.destroy();
    const row = await agentRow(hub, 'revoked');
    assert.ok(row === undefined || !row.connected, `agents ls still shows the removed agent connected: ${JSON.stringify(row)}`);

    // Same data dir, same certificate: the hub refuses it, and the agent gives up instead of retrying.
    const again = await waitForExit(spawnAgent(procs, 'revoked', { dataDir: agent.dataDir }), 20_000);
    assert.notEqual(again.code, 0);
    assert.match(output(again), /WARREN_E_AGENT_REVOKED/);
  });

  describe('join tokens', () => {
    it('an expired token is refused: WARREN_E_JOIN_TOKEN_EXPIRED', { timeout: 30_000 }, async () => {
      const created = await cliJson<{ token: string; expiresAt: string }>(hub, ['join-token', 'create', '--ttl', '1s']);
      await clockPast(Date.parse(created.expiresAt));
      const exit = await waitForExit(spawnAgent(procs, 'late', { token: created.token }), 20_000);
      assert.notEqual(exit.code, 0);
      assert.match(output(exit), /WARREN_E_JOIN_TOKEN_EXPIRED/);
      assert.match(output(exit), /expired/);
    });

    it('a token with --uses 1 lets one agent in and refuses the next: WARREN_E_JOIN_TOKEN_USED_UP', { timeout: 45_000 }, async () => {
      const { token } = await cliJson<{ token: string }>(hub, ['join-token', 'create', '--uses', '1']);
      await startAgent({ group: procs, hub, name: 'first', token, args: PING });
      const exit = await waitForExit(spawnAgent(procs, 'second', { token }), 20_000);
      assert.notEqual(exit.code, 0);
      assert.match(output(exit), /WARREN_E_JOIN_TOKEN_USED_UP/);
    });

    it("a token meant for B cannot take over A's name: WARREN_E_AGENT_NAME_TAKEN (and B can still use it)", { timeout: 45_000 }, async () => {
      await startAgent({ group: procs, hub, name: 'holder', args: PING });
      const { token } = await cliJson<{ token: string }>(hub, ['join-token', 'create', '--uses', '1']);
      const exit = await waitForExit(spawnAgent(procs, 'holder', { token }), 20_000);
      assert.notEqual(exit.code, 0);
      assert.match(output(exit), /WARREN_E_AGENT_NAME_TAKEN/);
      assert.equal((await agentRow(hub, 'holder'))?.connected, true, 'the real holder of the name lost its tunnel');
      // The refused attempt did not spend the token.
      await startAgent({ group: procs, hub, name: 'newcomer', token, args: PING });
    });

    it('a tampered token is refused: WARREN_E_JOIN_TOKEN_INVALID', { timeout: 30_000 }, async () => {
      const { token } = await cliJson<{ token: string }>(hub, ['join-token', 'create']);
      // Change one character of the secret (the last field), keeping the token well-formed.
      const last = token.at(-1)!;
      const tampered = token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
      const exit = await waitForExit(spawnAgent(procs, 'forger', { token: tampered }), 20_000);
      assert.notEqual(exit.code, 0);
      assert.match(output(exit), /WARREN_E_JOIN_TOKEN_INVALID/);
      assert.equal(await agentRow(hub, 'forger'), undefined);
    });
  });

  it('a stalled reader does not slow its siblings: stream B keeps ≥ 50 % of its solo throughput', { timeout: 5 * 60_000 }, async (t) => {
    await startAgent({ group: procs, hub, name: 'shared', args: PING });
    const n = 256 * MiB;
    const bSource = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: n, seed: 'b' });
    // A's target pushes far more than every buffer on the way can hold, so A stays stalled throughout.
    const aSource = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: 4096 * MiB, seed: 'a' });

    // Rounds alternate solo / beside a stalled A so drift on a shared machine hits both alike.
    const solo: number[] = [];
    const stalled: number[] = [];
    for (let round = 0; round < 3; round++) {
      solo.push(await timedDownload(hub, `shared:${bSource.port}`, 'b', n));

      // Stream A: CONNECT answered, then never read (connectThroughHub returns it paused).
      const a = await connectThroughHub(hub, `shared:${aSource.port}`);
      try {
        stalled.push(await timedDownload(hub, `shared:${bSource.port}`, 'b', n));
        // A is still open (stalled, not finished or failed) on the same tunnel.
        assert.equal(a.destroyed, false);
        assert.equal(a.readableEnded, false);
        const open = (await agentRow(hub, 'shared'))?.streamsOpen ?? 0;
        assert.ok(open >= 1, `stream A should still be open on the tunnel (streamsOpen=${open})`);
      } finally {
        a.destroy();
      }
    }
    const soloMbps = mbPerSec(n, median(solo));
    const stalledMbps = mbPerSec(n, median(stalled));
    t.diagnostic(`stream B alone: ${soloMbps} MB/s (${solo.map((ms) => mbPerSec(n, ms)).join(', ')})`);
    t.diagnostic(`stream B beside stalled A: ${stalledMbps} MB/s (${stalled.map((ms) => mbPerSec(n, ms)).join(', ')})`);
    assert.ok(stalledMbps >= 0.5 * soloMbps, `B beside a stalled A ran at ${stalledMbps} MB/s, below 50 % of ${soloMbps} MB/s alone`);
  });
});

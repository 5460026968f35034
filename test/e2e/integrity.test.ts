// Acceptance: bytes cross the tunnel unchanged, in both directions, on one big stream and on several
// streams at once. Real hub and agent processes on loopback, a real upstream, an in-process CONNECT
// client; each side hashes what it saw and the hashes must match. The MB/s figures are diagnostics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, withDeadline } from '../support/proc.js';
import { startAgent, startHub, type HubProc } from '../support/warren.js';
import { seededSha256, startUpstream, type Upstream } from '../support/upstreams.js';
import { connectThroughHub, mbPerSec, readAll, writeSeeded } from '../support/connectClient.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Generous: ~4 MB/s would still pass; a stall (lost window update, stuck pipe) will not. */
const DEADLINE_MS = 5 * 60_000;
const AGENT = 'alpha';

/**
 * Sends `n` seeded bytes to a `sink` through the hub, half-closes, and reads the sink's answer (the hex
 * sha256 of what it received). Resolves with what was sent, what the sink saw, and the time taken.
 */
async function uploadToSink(hub: HubProc, sink: Upstream, seed: string, n: number) {
  const socket = await connectThroughHub(hub, `${AGENT}:${sink.port}`);
  const started = performance.now();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error("stream closed before the sink's answer")));
  });
  socket.resume();
  const sent = await writeSeeded(socket, seed, n);
  await ended;
  const ms = performance.now() - started;
  socket.destroy(); // both directions have ended by now
  return { sent, received: Buffer.concat(chunks).toString('utf8').trim(), ms };
}

describe('integrity through hub and agent', () => {
  const procs = new ChildGroup();
  let hub: HubProc;
  let sink: Upstream;

  before(async () => {
    hub = await startHub({ group: procs });
    await startAgent({ group: procs, hub, name: AGENT });
    sink = await startUpstream('sink', { group: procs, listen: '127.0.0.1:0' });
  });
  after(async () => {
    await procs.killAll();
    procs.dispose();
  });

  it('1 GiB client → target over one stream arrives with the same sha256', { timeout: DEADLINE_MS }, async (t) => {
    const n = GiB;
    const { sent, received, ms } = await withDeadline(uploadToSink(hub, sink, 'up-1g', n), DEADLINE_MS, 'sending 1 GiB');
    assert.equal(received, sent, 'sha256 at the target differs from what the client sent');
    t.diagnostic(`upload 1 GiB: ${mbPerSec(n, ms)} MB/s (${Math.round(ms)} ms)`);
  });

  it('1 GiB target → client over one stream arrives with the same sha256', { timeout: DEADLINE_MS }, async (t) => {
    const n = GiB;
    const source = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: n, seed: 'down-1g' });
    const socket = await connectThroughHub(hub, `${AGENT}:${source.port}`);
    // No early end(): see the half-close caveat in connectClient.ts.
    const got = await withDeadline(readAll(socket), DEADLINE_MS, 'receiving 1 GiB');
    socket.end(() => socket.destroy());
    await source.stop();
    assert.ok(got.clean, `stream did not end cleanly: ${got.error?.message ?? 'closed before EOF'}`);
    assert.equal(got.bytes, n);
    assert.equal(got.sha256, seededSha256('down-1g', n), 'sha256 at the client differs from what the target sent');
    t.diagnostic(`download 1 GiB: ${mbPerSec(n, got.elapsedMs)} MB/s (${Math.round(got.elapsedMs)} ms)`);
  });

  it('8 × 128 MiB at once (4 up, 4 down) each arrive with their own sha256', { timeout: DEADLINE_MS }, async (t) => {
    const n = 128 * MiB;
    const sources = await Promise.all(
      [0, 1, 2, 3].map((i) => startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: n, seed: `down-${i}` })),
    );
    // Distinct seeds per stream: a stream wired to the wrong target would show up as a hash mismatch.
    const started = performance.now();
    const ups = [0, 1, 2, 3].map(async (i) => ({ i, ...(await uploadToSink(hub, sink, `up-${i}`, n)) }));
    const downs = sources.map(async (source, i) => {
      const socket = await connectThroughHub(hub, `${AGENT}:${source.port}`);
      const got = await readAll(socket);
      socket.end(() => socket.destroy());
      return { i, got };
    });
    const [upResults, downResults] = await withDeadline(Promise.all([Promise.all(ups), Promise.all(downs)]), DEADLINE_MS, '8 streams');
    const ms = performance.now() - started;
    for (const { i, sent, received } of upResults) assert.equal(received, sent, `upload stream ${i}: sha256 differs`);
    for (const { i, got } of downResults) {
      assert.ok(got.clean, `download stream ${i} did not end cleanly: ${got.error?.message ?? 'closed before EOF'}`);
      assert.equal(got.bytes, n, `download stream ${i}: byte count`);
      assert.equal(got.sha256, seededSha256(`down-${i}`, n), `download stream ${i}: sha256 differs`);
    }
    await Promise.all(sources.map((s) => s.stop()));
    t.diagnostic(`8 × 128 MiB concurrent: ${mbPerSec(8 * n, ms)} MB/s aggregate (${Math.round(ms)} ms)`);
  });
});

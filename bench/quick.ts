/**
 * `npm run bench:quick`: one TCP stream of BENCH_BYTES (default 1 GiB) from a `source` upstream on
 * loopback, read directly and through Warren (real hub and agent processes with their deployed V8
 * flags, the HTTP CONNECT door over TLS, the agent's HTTP/2 tunnel), in the same run, alternating
 * direct/warren so drift hits both alike.
 * Each figure is the median of BENCH_REPEATS (default 3) runs; the table ends with Warren ÷ direct.
 *
 * Bounds: BENCH_BYTES (bytes per run), BENCH_REPEATS, BENCH_DEADLINE_SECONDS (per run, default 120):
 * a run that does not finish in time fails the bench instead of hanging it.
 *
 *   npm run bench:quick
 *   BENCH_BYTES=268435456 npm run bench:quick
 */
import net from 'node:net';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { ChildGroup, withDeadline } from '../test/support/proc.js';
import { startAgent, startHub } from '../test/support/warren.js';
import { warrenCommand } from './lib/warrenProcs.js';
import { startUpstream } from '../test/support/upstreams.js';
import { connectThroughHub, mbPerSec } from '../test/support/connectClient.js';
import { positiveInt } from './lib/env.js';
import { median } from './lib/stats.js';

const BYTES = positiveInt('BENCH_BYTES', 1 << 30);
const REPEATS = positiveInt('BENCH_REPEATS', 3);
const DEADLINE_MS = positiveInt('BENCH_DEADLINE_SECONDS', 120) * 1000;
const AGENT = 'bench';

/** Reads until EOF, counting bytes only (no hashing: this measures the path, not the CPU's sha256). */
function drain(stream: Readable, expected: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => void (bytes += chunk.length));
    stream.once('error', reject);
    stream.once('end', () => {
      const ms = performance.now() - started;
      if (bytes !== expected) reject(new Error(`read ${bytes} bytes, expected ${expected}`));
      else resolve(ms);
    });
    stream.resume();
  });
}

async function main(): Promise<void> {
  const procs = new ChildGroup();
  try {
    const hub = await startHub({ group: procs, command: warrenCommand('hub') });
    await startAgent({ group: procs, hub, name: AGENT, command: warrenCommand('agent') });
    const source = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: BYTES, seed: 'bench' });

    const direct = async () => {
      const socket = net.connect({ host: source.host, port: source.port });
      socket.setNoDelay(true);
      try {
        return await withDeadline(drain(socket, BYTES), DEADLINE_MS, 'direct run');
      } finally {
        socket.destroy();
      }
    };
    const warren = async () => {
      const socket = await connectThroughHub(hub, `${AGENT}:${source.port}`);
      try {
        return await withDeadline(drain(socket, BYTES), DEADLINE_MS, 'warren run');
      } finally {
        socket.destroy();
      }
    };

    const times = { direct: [] as number[], warren: [] as number[] };
    for (let i = 0; i < REPEATS; i++) {
      times.direct.push(await direct());
      times.warren.push(await warren());
      process.stderr.write(`run ${i + 1}/${REPEATS}: direct ${mbPerSec(BYTES, times.direct[i]!)} MB/s, warren ${mbPerSec(BYTES, times.warren[i]!)} MB/s\n`);
    }

    const rows = (['direct', 'warren'] as const).map((name) => {
      const ms = median(times[name]);
      return { name, ms, mbps: mbPerSec(BYTES, ms), all: times[name].map((t) => mbPerSec(BYTES, t)) };
    });
    const [d, w] = rows as [(typeof rows)[0], (typeof rows)[0]];
    const mib = Math.round((BYTES / (1 << 20)) * 10) / 10;
    const cpus = os.cpus();
    console.log(`\nbench:quick — one TCP stream of ${mib} MiB on loopback, median of ${REPEATS}; node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}\n`);
    console.log('| path                                   | MB/s (median) | runs (MB/s)              | time (ms) |');
    console.log('|----------------------------------------|--------------:|--------------------------|----------:|');
    const label = { direct: 'direct TCP → source', warren: 'warren: CONNECT/TLS → hub → h2 → agent' };
    for (const r of rows) {
      console.log(`| ${label[r.name].padEnd(38)} | ${String(r.mbps).padStart(13)} | ${r.all.join(', ').padEnd(24)} | ${String(Math.round(r.ms)).padStart(9)} |`);
    }
    console.log(`\nwarren ÷ direct: ${(w.mbps / d.mbps).toFixed(2)}`);
  } finally {
    await procs.killAll();
    procs.dispose();
  }
}

await main();

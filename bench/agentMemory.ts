/**
 * `npm run bench:agent-memory`: the RSS of an idle agent, as each way of installing it runs it, against
 * the floor of the runtime (a bare `node` doing nothing) in the same run. Every agent starts with the
 * agent's own heap flags (src/shared/nodeFlags.ts; the single-file executable takes Node options only
 * from NODE_OPTIONS, which refuses --heap-growing-percent, so it runs with AGENT_NODE_OPTIONS alone, as
 * docs/install.md's unit does), joins a real hub once (the "just joined" column: the signing library
 * is loaded for the CSR), then is restarted BENCH_RESTARTS times with its identity, as after every restart of its
 * service, and measured after BENCH_IDLE_SECONDS of idle with its tunnel up (V8's memory reducer gives
 * back an unused young generation in the first seconds). Medians over the restarts.
 *
 *   npm run bench:agent-memory
 *   BENCH_IDLE_SECONDS=30 BENCH_RESTARTS=5 npm run bench:agent-memory
 *
 * The single-file agent is built first (`npm run dist`, ~10 s).
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as idle } from 'node:timers/promises';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { ChildGroup, waitForReady } from '../test/support/proc.js';
import { tempDir, WARREN_BIN } from '../test/support/warren.js';
import { AGENT_NODE_FLAGS, AGENT_NODE_OPTIONS } from '../src/shared/nodeFlags.js';
import { startBenchHub, warrenCli, type BenchHub } from './lib/warrenProcs.js';
import { positiveInt } from './lib/env.js';
import { machineLine } from './lib/machine.js';
import { rssBytes, rssParts } from './lib/procstat.js';
import { fmt, markdownTable, median, mib } from './lib/stats.js';

const IDLE_MS = positiveInt('BENCH_IDLE_SECONDS', 15) * 1000;
const RESTARTS = positiveInt('BENCH_RESTARTS', 3);
const ROOT = path.resolve(import.meta.dirname, '..');

interface Variant {
  readonly name: string;
  /** The command and its arguments before the agent's own (undefined: the bare-node floor). */
  readonly argv?: readonly string[];
  readonly env?: Record<string, string>;
}

const VARIANTS: readonly Variant[] = [
  { name: 'bare `node` (the floor: no code of ours)' },
  { name: '`warren agent` (npm package)', argv: [process.execPath, ...AGENT_NODE_FLAGS, WARREN_BIN, 'agent'] },
  { name: '`warren-agent` (npm package, the systemd unit)', argv: [process.execPath, ...AGENT_NODE_FLAGS, path.join(ROOT, 'bin/warren-agent.cjs')] },
  { name: '`node warren-agent.cjs` (the single-file bundle)', argv: [process.execPath, ...AGENT_NODE_FLAGS, path.join(ROOT, 'release/warren-agent.cjs')] },
  { name: '`warren-agent` (the single-file executable)', argv: [path.join(ROOT, 'release/warren-agent')], env: { NODE_OPTIONS: AGENT_NODE_OPTIONS } },
];

interface Sample { rss: number; anon: number; file: number }

function sample(pid: number): Sample {
  const parts = rssParts(pid);
  return { rss: rssBytes(pid), anon: parts.anon, file: parts.file };
}

/**
 * Evicts FILE from the page cache, so that an executable is read from disk as after a boot. Just built,
 * its pages sit in the cache in the large folios that the build's writes made, and a process that maps
 * it counts whole folios as resident: measured, ~12 MiB more RSS than the same file read back from disk
 * (or copied with `cp`). `dd iflag=nocache count=0` is coreutils' documented way to drop a file's cache.
 */
function evictPageCache(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
}

/** Starts the variant's agent (or the bare node) and resolves once it is connected and idle. */
async function startIdle(group: ChildGroup, hub: BenchHub, v: Variant, agent: { name: string; dataDir: string; token?: string }): Promise<ChildProcess> {
  if (!v.argv) {
    const child = group.spawn(process.execPath, [...AGENT_NODE_FLAGS, '-e', 'process.send({ ready: true }); setInterval(() => {}, 1 << 30);'], { ipc: true });
    await waitForReady(child, 10_000);
    return child;
  }
  const [cmd, ...args] = v.argv;
  if (cmd !== process.execPath) evictPageCache(cmd!);
  const child = group.spawn(cmd!, [...args, '--name', agent.name, '--data-dir', agent.dataDir, '--hub', hub.url], {
    ipc: true, env: { ...process.env, ...v.env, ...(agent.token ? { WARREN_JOIN_TOKEN: agent.token } : {}) },
  });
  await waitForReady(child, 30_000);
  return child;
}

async function main(): Promise<void> {
  process.stderr.write('[agent-memory] building the single-file agent (npm run dist)…\n');
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/dist.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const machine = machineLine();
  const group = new ChildGroup();
  const started = performance.now();
  const rows: Array<{ name: string; joined?: Sample; idle: Sample[] }> = [];
  try {
    const hub = await startBenchHub({ group });
    for (const [i, v] of VARIANTS.entries()) {
      const agent = { name: `mem-${i}`, dataDir: tempDir(`bench-mem-${i}`) };
      const row: (typeof rows)[number] = { name: v.name, idle: [] };
      if (v.argv) {
        process.stderr.write(`[agent-memory] ${v.name}: join\n`);
        const token = (JSON.parse(await warrenCli(hub, ['join-token', 'create', '-o', 'json'])) as { token: string }).token;
        const child = await startIdle(group, hub, v, { ...agent, token });
        await idle(IDLE_MS);
        row.joined = sample(child.pid!);
        await group.kill(child);
      }
      for (let r = 0; r < RESTARTS; r++) {
        process.stderr.write(`[agent-memory] ${v.name}: restart ${r + 1}/${RESTARTS}, ${IDLE_MS / 1000} s idle\n`);
        const child = await startIdle(group, hub, v, agent);
        await idle(IDLE_MS);
        row.idle.push(sample(child.pid!));
        await group.kill(child);
      }
      rows.push(row);
    }
  } finally {
    await group.killAll();
  }

  const floor = median(rows[0]!.idle.map((x) => x.rss));
  const table = markdownTable(
    ['agent', 'RSS idle, restarted MiB (median)', 'anonymous / file MiB', 'above the floor MiB', 'just joined MiB', 'target < 40 MiB'],
    rows.map((r) => {
      const rss = median(r.idle.map((x) => x.rss));
      // The parts of the restart closest to the median.
      const at = r.idle.reduce((a, b) => (Math.abs(b.rss - rss) < Math.abs(a.rss - rss) ? b : a));
      return [
        r.name, fmt(mib(rss), 1), `${fmt(mib(at.anon), 1)} / ${fmt(mib(at.file), 1)}`, r.joined ? fmt(mib(rss - floor), 1) : '–',
        r.joined ? fmt(mib(r.joined.rss), 1) : '–', rss < 40 * 2 ** 20 ? 'met' : 'missed',
      ];
    }),
  );
  console.log(`\nIdle agent memory: ${machine}; agent flags ${AGENT_NODE_FLAGS.join(' ')}; ${RESTARTS} restarts, ${IDLE_MS / 1000} s idle each; took ${fmt((performance.now() - started) / 1000)} s.\n\n${table}\n`);
}

await main();

#!/usr/bin/env node
// Runs the test suites. Node 20's `--test` does not expand globs, so this finds the files:
//   unit tests        src/**/*.test.ts
//   end-to-end tests  test/**/*.test.ts
//
//   node scripts/run-tests.mjs                 # everything
//   node scripts/run-tests.mjs --unit          # only src/
//   node scripts/run-tests.mjs lab socks5      # only files whose path contains "lab" or "socks5"
//
// Files run one at a time (--test-concurrency=1): end-to-end tests start real servers and namespaces,
// and two at once would only make failures harder to read. A test that hangs fails after
// --test-timeout (8 minutes a file, 16 × CHAOS_SCALE minutes for a soak) instead of stalling the whole
// run.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function findTests(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name.startsWith('.') ? [] : findTests(path);
    return entry.isFile() && entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => a !== '--unit');
const dirs = unitOnly ? ['src'] : ['src', 'test'];
const files = dirs
  .flatMap((d) => findTests(join(root, d)).sort())
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((needle) => f.includes(needle)));

if (files.length === 0) {
  console.error(`run-tests: no test files found${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}

// A soak (CHAOS_SCALE=10, about 70 minutes) is one file: its limit grows with the scale.
const chaosScale = Number(process.env.CHAOS_SCALE) || 1;
const timeoutMs = chaosScale > 1 ? 960_000 * chaosScale : 480_000;
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', `--test-timeout=${timeoutMs}`, ...files],
  { cwd: root, stdio: 'inherit' },
);
// Pass an interrupt on so the runner can tear its tests down, then exit the way it did.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

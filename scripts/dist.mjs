#!/usr/bin/env node
// `npm run dist`: the single-file agent executable, release/warren-agent (plus its bundle,
// release/warren-agent.cjs, which any Node ≥ 20 runs as `node warren-agent.cjs`).
//
//   1. the agent's bundle, as `npm run build` makes it (scripts/build-agent.mjs);
//   2. Node's single executable application: `node --experimental-sea-config` makes a blob of the
//      bundle, postject injects it into a copy of this Node binary.
//
// The executable runs on machines like this one (same OS, CPU architecture and C library) with
// nothing else installed. See docs/install.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'postject';
import { bundleAgent } from './build-agent.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'release');
const bundle = path.join(out, 'warren-agent.cjs');
const blob = path.join(out, 'warren-agent.blob');
const exe = path.join(out, 'warren-agent');
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

fs.mkdirSync(out, { recursive: true });
const started = performance.now();
await bundleAgent(bundle);

fs.writeFileSync(path.join(out, 'sea-config.json'), JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
execFileSync(process.execPath, ['--experimental-sea-config', path.join(out, 'sea-config.json')], { stdio: 'inherit' });
fs.rmSync(exe, { force: true });
fs.copyFileSync(process.execPath, exe);
fs.chmodSync(exe, 0o755);
await inject(exe, 'NODE_SEA_BLOB', fs.readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
fs.rmSync(blob);
const mb = (f) => (fs.statSync(f).size / 2 ** 20).toFixed(1);
console.log(`release/warren-agent ${version}: ${mb(exe)} MiB (bundle ${mb(bundle)} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);

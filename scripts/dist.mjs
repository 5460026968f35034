#!/usr/bin/env node
// `npm run dist`: the single-file agent executable, release/warren-agent (plus its bundle,
// release/warren-agent.cjs, which any Node ≥ 20 runs as `node warren-agent.cjs`).
//
//   1. esbuild bundles src/cli/agentMain.ts and everything it imports into one CommonJS file. The
//      agent has no native module (the hub's SQLite store is the only one, and is not imported).
//      A library only some agents use (EMBEDDED below) is bundled on its own and carried inside,
//      compressed, as a string, compiled the first time it is imported: V8 pre-parses every function
//      of a script it loads, called or not, and the Kubernetes client, 3.5 MiB of the bundle's 4.5,
//      cost every agent ~30 MiB of RSS while only an agent with --kube runs it (docs/benchmarks.md,
//      finding 10).
//   2. Node's single executable application: `node --experimental-sea-config` makes a blob of the
//      bundle, postject injects it into a copy of this Node binary.
//
// The executable runs on machines like this one (same OS, CPU architecture and C library) with
// nothing else installed. See docs/install.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync } from 'node:zlib';
import { build } from 'esbuild';
import { inject } from 'postject';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'release');
const bundle = path.join(out, 'warren-agent.cjs');
const blob = path.join(out, 'warren-agent.blob');
const exe = path.join(out, 'warren-agent');
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/**
 * Imported lazily by the agent: the Kubernetes client by an agent serving a cluster
 * (src/agent/kube/credentials.ts), the certificate library (and the metadata polyfill it needs loaded
 * first) to join or renew (src/pki/pki.ts). A filter, so that esbuild calls the plugin for these
 * imports alone.
 */
const EMBEDDED = /^(@kubernetes\/client-node|@peculiar\/x509|reflect-metadata)$/;

/**
 * A CommonJS module that compiles `pkg`'s own bundle on first require. The bundle is carried
 * brotli-compressed in base64 (3.5 → 0.27 MiB): one ASCII string literal, which V8 skips over without
 * parsing. It runs as the bundle's other CommonJS modules do (the same require, __filename and
 * __dirname: the bundle's).
 */
async function embeddedModule(pkg) {
  const lib = await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: root },
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', minify: true, legalComments: 'eof', write: false, logLevel: 'warning',
  });
  const packed = brotliCompressSync(lib.outputFiles[0].contents).toString('base64');
  return [
    `const m = { exports: {} };`,
    `const source = require('node:zlib').brotliDecompressSync(Buffer.from(${JSON.stringify(packed)}, 'base64')).toString();`,
    `const wrapper = require('node:vm').compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: ${JSON.stringify(`embedded:${pkg}`)} });`,
    `wrapper(m.exports, require, m, __filename, __dirname);`,
    `module.exports = m.exports;`,
  ].join('\n');
}

fs.mkdirSync(out, { recursive: true });
const started = performance.now();
const result = await build({
  entryPoints: [path.join(root, 'src/cli/agentMain.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [
    {
      // src/shared/version.ts reads package.json beside the sources; a single file has none beside it.
      name: 'warren-version',
      setup(b) {
        b.onLoad({ filter: /[\\/]src[\\/]shared[\\/]version\.ts$/ }, () => ({ contents: `export const VERSION = ${JSON.stringify(version)};`, loader: 'ts' }));
      },
    },
    {
      name: 'warren-embedded',
      setup(b) {
        b.onResolve({ filter: EMBEDDED }, (a) => ({ path: a.path, namespace: 'embedded' }));
        b.onLoad({ filter: /.*/, namespace: 'embedded' }, async (a) => ({ contents: await embeddedModule(a.path), loader: 'js' }));
      },
    },
  ],
});
const natives = Object.keys(result.metafile.inputs).filter((f) => f.endsWith('.node') || f.includes('better-sqlite3'));
if (natives.length) throw new Error(`the agent bundle must hold no native module, but imports ${natives.join(', ')}`);

fs.writeFileSync(path.join(out, 'sea-config.json'), JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
execFileSync(process.execPath, ['--experimental-sea-config', path.join(out, 'sea-config.json')], { stdio: 'inherit' });
fs.rmSync(exe, { force: true });
fs.copyFileSync(process.execPath, exe);
fs.chmodSync(exe, 0o755);
await inject(exe, 'NODE_SEA_BLOB', fs.readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
fs.rmSync(blob);
const mb = (f) => (fs.statSync(f).size / 2 ** 20).toFixed(1);
console.log(`release/warren-agent ${version}: ${mb(exe)} MiB (bundle ${mb(bundle)} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);

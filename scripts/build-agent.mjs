#!/usr/bin/env node
// The agent alone in one CommonJS file: esbuild bundles src/cli/agentMain.ts and everything it
// imports. `npm run build` writes it to dist/warren-agent.cjs, which the npm package's `warren-agent`
// runs (bin/warren-agent.cjs; the systemd unit of `warren agent install` starts that); `npm run dist`
// (scripts/dist.mjs) writes it to release/ and makes the single-file executable of it.
//
// One file rather than the agent's ES modules: an idle agent holds less (Node's ES module loader
// touches more of its binary per module, and zod's core loads every locale unbundled;
// docs/benchmarks.md, finding 10). The agent has no native module (the hub's SQLite store is the only
// one, and is not imported). A library only some agents use (EMBEDDED below) is bundled on its own and
// carried inside, compressed, as a string, compiled the first time it is imported: V8 pre-parses every
// function of a script it loads, called or not, and the Kubernetes client, 3.5 MiB of the bundle's
// 4.5, cost every agent ~30 MiB of RSS while only an agent with --kube runs it.
//
//   node scripts/build-agent.mjs          # part of `npm run build`
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync } from 'node:zlib';
import { build } from 'esbuild';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
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

/** Writes the agent's bundle to `outfile`. */
export async function bundleAgent(outfile) {
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const result = await build({
    entryPoints: [path.join(root, 'src/cli/agentMain.ts')],
    outfile,
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
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleAgent(path.join(root, 'dist', 'warren-agent.cjs'));

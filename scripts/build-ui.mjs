#!/usr/bin/env node
// Builds the web UI (src/ui, Preact + TypeScript) into dist/ui: one script and one stylesheet with
// content hashes in their names, and index.html pointing at them. Everything is bundled: the hub
// serves the UI with a CSP that allows nothing from elsewhere.
//
//   node scripts/build-ui.mjs          # part of `npm run build`
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await build({
  entryPoints: [join(root, 'src', 'ui', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});

const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
const script = files.find((f) => f.endsWith('.js'));
const style = files.find((f) => f.endsWith('.css'));
if (!script || !style) throw new Error(`build-ui: expected a .js and a .css output, got ${files.join(', ')}`);
const html = readFileSync(join(root, 'src', 'ui', 'index.html'), 'utf8').replace('%SCRIPT%', `/ui/assets/${script}`).replace('%STYLE%', `/ui/assets/${style}`);
writeFileSync(join(out, 'index.html'), html);

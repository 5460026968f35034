/**
 * What a `warren` command loads before it runs. ssh starts `warren connect` once per connection (its
 * ProxyCommand), so every module on the start-up path is time before the first byte: zod alone is
 * ~80 ms, yaml ~45, pino ~35 (docs/benchmarks.md, finding 9). A loader hook in a child process records
 * every module the command loads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-program-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The URL of every module `warren ARGS` loads (ours from src, through tsx), and its stdout. */
function loadedBy(args: readonly string[]): { modules: string[]; stdout: string } {
  const log = path.join(dir, `${args.join('-')}.log`);
  const hooks = path.join(dir, 'hooks.mjs');
  fs.writeFileSync(hooks, `import fs from 'node:fs';\nexport async function load(url, context, next) { fs.appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`);
  const register = path.join(dir, 'register.mjs');
  fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`);
  const stdout = execFileSync(process.execPath, ['--import', 'tsx', '--import', register, path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, encoding: 'utf8' });
  return { modules: fs.readFileSync(log, 'utf8').split('\n').filter(Boolean), stdout };
}

/** Packages that are slow to load, and the modules that load them or the hub or the agent. */
const heavy = (modules: string[]) => modules.filter((url) => /\/node_modules\/(zod|yaml|pino)\/|\/src\/(hub\/(hub|config)|agent\/(agent|config)|shared\/options)\.ts$/.test(url));

test('`warren connect` starts without zod, yaml, the logger, the hub or the agent', () => {
  const { modules, stdout } = loadedBy(['connect', '--help']);
  assert.match(stdout, /Usage: warren connect/);
  assert.ok(modules.some((url) => url.endsWith('/src/client/connectThroughHub.ts')), 'its own modules are loaded');
  assert.deepEqual(heavy(modules), []);
});

test('`warren hub --help` loads the hub\'s option specs and shows their flags', () => {
  const { modules, stdout } = loadedBy(['hub', '--help']);
  assert.match(stdout, /--max-handshakes <n>/);
  assert.match(stdout, /Environment \(a flag given wins\):/);
  assert.ok(modules.some((url) => url.endsWith('/src/hub/config.ts')));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NODE_FLAGS } from './nodeFlags.js';

const read = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');

test('this Node accepts the flags', () => {
  assert.equal(execFileSync(process.execPath, [...NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' }), 'ok');
});

test('bin/warren.js, the Dockerfile and npm start run node with the flags', () => {
  assert.equal(read('bin/warren.js').split('\n')[0], `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  assert.match(read('Dockerfile'), new RegExp(`^ENTRYPOINT ${JSON.stringify(['node', ...NODE_FLAGS, '/app/bin/warren.js']).replace(/[[\]]/g, '\\$&').replace(/,/g, ', ')}$`, 'm'));
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
  assert.ok(start.includes(`node ${NODE_FLAGS.join(' ')} bin/warren.js hub --demo`), start);
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { WarrenError } from './errors.js';
import { option } from './options.js';
import { readOptionsFile } from './optionsFile.js';

const specs = {
  pingInterval: option(z.string(), { arg: 'd', default: '10s', help: 'keepalive interval' }),
  peer: option(z.string(), { arg: 'addr', help: 'where to dial' }),
  san: option(z.array(z.string()), { arg: 'name', repeatable: true, default: [], help: 'extra names' }),
  verbose: option(z.boolean(), { default: false, help: 'say more' }),
  proxy: option(z.string(), { envOnly: true, env: 'T_PROXY', help: 'proxy for outgoing connections' }),
  config: option(z.string(), { arg: 'file', notInFile: true, help: 'this file' }),
};

const configError = (re: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && re.test(err.message);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-options-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let files = 0;

function read(text: string) {
  const file = path.join(dir, `${++files}`, 'opts.yaml');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, text);
  return readOptionsFile(specs, file);
}

test('kebab-case keys become option keys; YAML numbers, lists and booleans become what the command line gives', () => {
  const got = read('ping-interval: 3s\npeer: host:22\nsan: [a, 7]\nverbose: true\n');
  assert.match(got.path, /opts\.yaml$/);
  assert.deepEqual(got.values, { pingInterval: '3s', peer: 'host:22', san: ['a', '7'], verbose: true });
  assert.deepEqual(read('san: a, b\n').values, { san: ['a', 'b'] }, 'a scalar of a repeatable option is a comma list');
  assert.deepEqual(read('').values, {}, 'an empty file gives nothing');
});

test('unknown keys and values of the wrong shape are named, every one', () => {
  assert.throws(() => read('ping-interval: 3s\nbogus: 1\n'), configError(/opts\.yaml: unknown key "bogus"/));
  assert.throws(() => read('pingInterval: 3s\n'), configError(/unknown key "pingInterval" \(write it as "ping-interval"\)/));
  assert.throws(() => read('proxy: http://p:1\n'), configError(/unknown key "proxy"/), 'environment-only options are not file keys');
  assert.throws(() => read('config: other.yaml\n'), configError(/unknown key "config"/), 'command-line-only options are not file keys');
  assert.throws(() => read('verbose: 1\n'), configError(/opts\.yaml: verbose: must be true or false/));
  assert.throws(() => read('peer: [a, b]\n'), configError(/opts\.yaml: peer: must be a single value/));
  assert.throws(() => read('san: {a: 1}\n'), configError(/opts\.yaml: san: must be a value or a list of values/));
  assert.throws(() => read('bogus: 1\nverbose: 1\n'), configError(/unknown key "bogus".*; .*verbose: must be true or false/));
});

test('a file that is not a mapping, not YAML or not there: the file named, the first line of the reason', () => {
  assert.throws(() => read('- a\n- b\n'), configError(/not a YAML mapping/));
  assert.throws(() => read('peer: a\npeer: b\n'), configError(/--config .*opts\.yaml: Map keys must be unique/));
  assert.throws(() => readOptionsFile(specs, path.join(dir, 'warren-no-such-options.yaml')), configError(/--config .*warren-no-such-options\.yaml: ENOENT/));
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { WarrenError } from './errors.js';
import { addOptions, durationText, option, optionsSchema, parseOptions } from './options.js';

const specs = {
  pingInterval: option(durationText, { arg: 'd', default: '10s', env: 'T_PING', help: 'keepalive interval' }),
  peer: option(z.string(), { arg: 'addr', help: 'where to dial' }),
  san: option(z.array(z.string()), { arg: 'name', repeatable: true, default: [], help: 'extra names' }),
  verbose: option(z.boolean(), { default: false, help: 'say more' }),
  proxy: option(z.string(), { envOnly: true, env: ['T_PROXY', 't_proxy'], help: 'proxy for outgoing connections' }),
};
const schema = optionsSchema(specs);

/** Runs the generated command line as a user would type it and returns the parsed options. */
function run(argv: string[], env: NodeJS.ProcessEnv = {}, file?: string) {
  const cmd = addOptions(new Command('t').exitOverride(), specs);
  cmd.parse(argv, { from: 'user' });
  return parseOptions(specs, schema, { flags: cmd.opts(), env, file });
}

function help(): string {
  let out = '';
  const cmd = addOptions(new Command('t'), specs).configureOutput({ writeOut: (s) => (out += s) });
  cmd.outputHelp();
  return out;
}

const configError = (re: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && re.test(err.message);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-options-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let files = 0;

function writeFile(text: string): string {
  const file = path.join(dir, `${++files}`, 'opts.yaml');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, text);
  return file;
}

test('--help lists every flag with its placeholder, help text, default and environment variable', () => {
  const text = help();
  assert.match(text, /--ping-interval <d>\s+keepalive interval \(default: 10s; env: T_PING\)/);
  assert.match(text, /--peer <addr>\s+where to dial\n/);
  assert.match(text, /--verbose\s+say more\n/);
  assert.doesNotMatch(text, /--proxy/, 'an environment-only option has no flag');
  assert.match(text, /Environment \(a flag given wins\):\n\s+T_PING\s+as --ping-interval\n\s+T_PROXY, t_proxy\s+proxy for outgoing connections/);
});

test('defaults apply through the schema when nothing is given', () => {
  assert.deepEqual(run([]), { pingInterval: 10_000, san: [], verbose: false });
});

test('flags are parsed and validated: repeatable lists, switches, durations', () => {
  assert.deepEqual(run(['--ping-interval', '500ms', '--san', 'a', '--san', 'b, c', '--verbose', '--peer', 'x:1']), {
    pingInterval: 500, san: ['a', 'b', 'c'], verbose: true, peer: 'x:1',
  });
  assert.throws(() => run(['--ping-interval', 'soon']), configError(/^--ping-interval: "soon" is not a duration/));
});

test('the environment variable is used when the flag is absent; the first one set of several wins', () => {
  assert.equal(run([], { T_PING: '2s' }).pingInterval, 2_000);
  assert.equal(run([], { t_proxy: 'http://lower:1', T_PROXY: 'http://upper:1' }).proxy, 'http://upper:1');
  assert.equal(run([], { t_proxy: 'http://lower:1' }).proxy, 'http://lower:1');
  assert.throws(() => run([], { T_PING: 'never' }), configError(/^T_PING: "never" is not a duration/), 'a bad value is named by the variable it came from');
});

test('precedence: flag beats environment beats config file beats default', () => {
  const file = writeFile('ping-interval: 3s\n');
  assert.equal(run([], {}, file).pingInterval, 3_000);
  assert.equal(run([], { T_PING: '2s' }, file).pingInterval, 2_000);
  assert.equal(run(['--ping-interval', '1s'], { T_PING: '2s' }, file).pingInterval, 1_000);
});

test('a config file: kebab-case keys, YAML numbers, lists and booleans; bad values and unknown keys named', () => {
  const good = writeFile('ping-interval: 3s\npeer: host:22\nsan: [a, b]\nverbose: true\n');
  assert.deepEqual(run([], {}, good), { pingInterval: 3_000, peer: 'host:22', san: ['a', 'b'], verbose: true });
  assert.throws(() => run([], {}, writeFile('ping-interval: 3s\nbogus: 1\n')), configError(/opts\.yaml: unknown key "bogus"/));
  assert.throws(() => run([], {}, writeFile('pingInterval: 3s\n')), configError(/unknown key "pingInterval" \(write it as "ping-interval"\)/));
  assert.throws(() => run([], {}, writeFile('proxy: http://p:1\n')), configError(/unknown key "proxy"/), 'environment-only options are not file keys');
  assert.throws(() => run([], {}, writeFile('ping-interval: soon\n')), configError(/opts\.yaml: ping-interval: "soon" is not a duration/));
  assert.throws(() => run([], {}, writeFile('verbose: 1\n')), configError(/opts\.yaml: verbose: must be true or false/));
  assert.throws(() => run([], {}, writeFile('- a\n- b\n')), configError(/not a YAML mapping/));
  assert.throws(() => run([], {}, writeFile('peer: a\npeer: b\n')), configError(/--config .*opts\.yaml: Map keys must be unique/));
  assert.throws(() => run([], {}, path.join(dir, 'warren-no-such-options.yaml')), configError(/--config .*warren-no-such-options\.yaml: ENOENT/));
});

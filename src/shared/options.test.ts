import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { z } from 'zod';
import { WarrenError } from './errors.js';
import { addOptions, durationText, option, optionsSchema, parseOptions, type OptionsFile } from './options.js';

const specs = {
  pingInterval: option(durationText, { arg: 'd', default: '10s', env: 'T_PING', help: 'keepalive interval' }),
  peer: option(z.string(), { arg: 'addr', help: 'where to dial' }),
  san: option(z.array(z.string()), { arg: 'name', repeatable: true, default: [], help: 'extra names' }),
  verbose: option(z.boolean(), { default: false, help: 'say more' }),
  proxy: option(z.string(), { envOnly: true, env: ['T_PROXY', 't_proxy'], help: 'proxy for outgoing connections' }),
};
const schema = optionsSchema(specs);

/** Runs the generated command line as a user would type it and returns the parsed options. */
function run(argv: string[], env: NodeJS.ProcessEnv = {}, file?: OptionsFile) {
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
  const file = { path: 'opts.yaml', values: { pingInterval: '3s' } };
  assert.equal(run([], {}, file).pingInterval, 3_000);
  assert.equal(run([], { T_PING: '2s' }, file).pingInterval, 2_000);
  assert.equal(run(['--ping-interval', '1s'], { T_PING: '2s' }, file).pingInterval, 1_000);
  assert.throws(() => run([], {}, { path: 'opts.yaml', values: { pingInterval: 'soon' } }), configError(/^opts\.yaml: ping-interval: "soon" is not a duration/), 'a bad value is named by the file and key');
});

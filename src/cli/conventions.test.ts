/**
 * The CLI's conventions, checked over the whole command tree: a command added later is held to them
 * without a test of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from './program.js';
import { oneLine, otherNumber, routeNounAlias, walk } from './conventions.js';

const program = buildProgram();
const all = walk(program);
const leaves = all.filter((c) => c.commands.length === 0);

function path(cmd: Command): string {
  const parts: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) parts.unshift(c.name());
  return parts.join(' ');
}

/** The whole help a user sees, text added with addHelpText included. */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (out += s) });
  cmd.outputHelp();
  return out;
}

function outputOf(cmd: Command) {
  return cmd.options.find((o) => o.long === '--output');
}

test('every leaf command shows examples in its help', () => {
  const missing = leaves.filter((c) => !/\nExamples?:\n {2}\S/.test(helpOf(c))).map(path);
  assert.deepEqual(missing, []);
});

test('help text cites no internal documents (design sections, issue numbers)', () => {
  const citing = all.filter((c) => /design\s*§|§\s*\d|\bissue\s+#?\d+/i.test(helpOf(c))).map(path);
  assert.deepEqual(citing, []);
});

test('-o is on every listing, table by default, and nowhere without structured output', () => {
  for (const c of leaves) {
    const o = outputOf(c);
    if (['ls', 'list', 'show', 'get'].includes(c.name())) assert.ok(o, `${path(c)} lists something: it takes -o`);
    if (['rm', 'delete', 'install', 'connect', 'forward', 'socks', 'login'].includes(c.name()) || c.parent === program && ['hub', 'agent'].includes(c.name())) {
      assert.equal(o, undefined, `${path(c)} prints nothing structured: no -o`);
    }
    if (!o) continue;
    assert.equal(o.short, '-o', path(c));
    const choices = o.argChoices ?? [];
    assert.ok(choices.length > 0 && choices.every((f) => ['table', 'json', 'yaml'].includes(f)), `${path(c)}: -o ${choices.join('|')}`);
    if (choices.includes('table')) assert.equal(o.defaultValue, 'table', `${path(c)}: table is the default`);
  }
});

test('every resource answers to both its singular and its plural', () => {
  const resources = program.commands.filter((c) => c.commands.some((s) => ['create', 'ls', 'rm', 'show', 'get'].includes(s.name())));
  assert.ok(resources.length >= 5);
  for (const r of resources) {
    const other = otherNumber(r.name());
    if (!other) continue;
    const sub = r.commands[0]!.name();
    const routed = routeNounAlias(program, ['node', 'warren', other, sub]);
    const reaches = r.aliases().includes(other) || routed[2] === r.name();
    assert.ok(reaches, `warren ${other} ${sub} reaches warren ${r.name()} ${sub}`);
  }
  for (const [typed, resource] of [['token', 'tokens'], ['agent', 'agents'], ['forward', 'forwards'], ['grant', 'grants'], ['join-tokens', 'join-token']] as const) {
    const routed = routeNounAlias(program, ['node', 'warren', typed, 'ls']);
    const cmd = program.commands.find((c) => c.name() === routed[2] || c.aliases().includes(routed[2]!));
    assert.equal(cmd?.name(), resource, `warren ${typed} ls`);
  }
});

test('a word that is also a command of its own keeps meaning that command', () => {
  assert.deepEqual(routeNounAlias(program, ['node', 'warren', 'agent', '--name', 'x']), ['node', 'warren', 'agent', '--name', 'x']);
  assert.deepEqual(routeNounAlias(program, ['node', 'warren', 'agent', 'install', '--print']), ['node', 'warren', 'agent', 'install', '--print']);
  assert.deepEqual(routeNounAlias(program, ['node', 'warren', 'forward', '8080:node1:80']), ['node', 'warren', 'forward', '8080:node1:80']);
  assert.deepEqual(routeNounAlias(program, ['node', 'warren', 'grant', '--user', 'ana']), ['node', 'warren', 'grant', '--user', 'ana']);
  assert.deepEqual(routeNounAlias(program, ['node', 'warren', 'agent', 'rm', 'n1']), ['node', 'warren', 'agents', 'rm', 'n1']);
});

test('the other number of a noun', () => {
  assert.equal(otherNumber('tokens'), 'token');
  assert.equal(otherNumber('join-token'), 'join-tokens');
  assert.equal(otherNumber('egress'), undefined);
});

test("a usage error is one line and keeps commander's suggestion whole", () => {
  assert.equal(oneLine("error: unknown command 'tokn'\n(Did you mean token?)\n"), "error: unknown command 'tokn' (Did you mean token?) (see --help)\n");
});

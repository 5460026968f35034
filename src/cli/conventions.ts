/**
 * The conventions every `warren` command follows, applied to the whole command tree once every
 * command is registered, so a command added later inherits them without doing anything:
 *
 * - one noun per resource, the other number accepted as an alias: `warren token ls` = `warren tokens
 *   ls`, `warren join-tokens create` = `warren join-token create`. A resource is a command with
 *   create/ls/show/rm/get subcommands. When the other form is a command of its own (`warren agent` runs
 *   an agent, `warren forward` is a local listener, `warren grant` creates a grant), the word is routed
 *   to the resource only when the next word is one of the resource's subcommands (`warren agent ls`).
 * - listing leaves (`ls`, `list`, `show`, `get`) take `-o table|json|yaml`, table by default; other
 *   commands with structured output declare it themselves with {@link outputOption}; nothing else has it.
 * - a usage error is one line on stderr, commander's "(Did you mean …?)" included, and exits 2 (main.ts).
 * - a command whose flags come from its process's option specs (`warren hub`, `warren agent`: src/shared/
 *   options.ts, which loads zod) gets them when it is about to run or show its help ({@link deferOptions}),
 *   so every other command starts without loading them: ~80 ms off each `warren connect`, which ssh
 *   starts once per connection (docs/benchmarks.md, finding 9).
 */
import { Option, type Command } from 'commander';
import type { OptionSpecs } from '../shared/options.js';

/** Subcommands that make a command a resource noun. */
const RESOURCE_VERBS = new Set(['create', 'ls', 'list', 'show', 'get', 'rm', 'delete']);
/** Leaves that print what the hub holds: they always take `-o`. */
const LISTING_LEAVES = new Set(['ls', 'list', 'show', 'get']);

/** `-o, --output table|json|yaml`, table by default: declare it on every command with structured output. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table');
}

/** The help section every leaf has: `Examples:` and one command a line (a trailing `# comment` is fine). */
export function examples(cmd: Command, lines: readonly string[]): Command {
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

/** `tokens` ↔ `token`, `join-token` ↔ `join-tokens`; undefined for words that are not a plain count noun (`egress`). */
export function otherNumber(name: string): string | undefined {
  if (/ss$/.test(name)) return undefined;
  return name.endsWith('s') ? name.slice(0, -1) : `${name}s`;
}

function names(cmd: Command): string[] {
  return [cmd.name(), ...cmd.aliases()];
}

function isResource(cmd: Command): boolean {
  return cmd.commands.some((sub) => RESOURCE_VERBS.has(sub.name()));
}

function findCommand(parent: Command, word: string): Command | undefined {
  return parent.commands.find((c) => names(c).includes(word));
}

/** Adds the other-number alias to every resource whose other form is free. */
function addNounAliases(program: Command): void {
  for (const cmd of program.commands) {
    if (!isResource(cmd)) continue;
    const other = otherNumber(cmd.name());
    if (other && !findCommand(program, other)) cmd.alias(other);
  }
}

/**
 * `warren agent ls` → `warren agents ls`: the other-number word of a resource that is also a command of
 * its own goes to the resource when the next word is one of the resource's subcommands and not one of
 * the command's. Returns argv unchanged otherwise.
 */
export function routeNounAlias(program: Command, argv: readonly string[]): string[] {
  const [node, script, word, next, ...rest] = argv;
  if (word === undefined || next === undefined) return [...argv];
  const own = findCommand(program, word);
  if (!own || isResource(own)) return [...argv];
  const resource = program.commands.find((c) => c !== own && isResource(c) && otherNumber(c.name()) === word);
  if (!resource || !findCommand(resource, next) || findCommand(own, next)) return [...argv];
  return [node!, script!, resource.name(), next, ...rest];
}

function addListingOutput(cmd: Command): void {
  for (const sub of cmd.commands) addListingOutput(sub);
  if (cmd.commands.length === 0 && LISTING_LEAVES.has(cmd.name()) && !cmd.options.some((o) => o.long === '--output')) cmd.addOption(outputOption());
}

/** One line: commander's message with its "(Did you mean …?)" line kept, then where to look. */
export function oneLine(text: string): string {
  return `${text.trim().split('\n').map((l) => l.trim()).filter(Boolean).join(' ')} (see --help)\n`;
}

function oneLineErrors(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({ outputError: (text, write) => write(oneLine(text)) });
  for (const sub of cmd.commands) oneLineErrors(sub);
}

const deferred = new WeakMap<Command, () => Promise<OptionSpecs>>();

/** `cmd`'s flags are the option specs `load` gives; they are added when `cmd` is dispatched to, or by {@link loadDeferredOptions}. */
export function deferOptions(cmd: Command, load: () => Promise<OptionSpecs>): Command {
  deferred.set(cmd, load);
  return cmd;
}

/** Adds the deferred flags of `cmd` and of every command under it (the whole tree: completion needs every flag). */
export async function loadDeferredOptions(cmd: Command): Promise<void> {
  for (const c of walk(cmd)) {
    const load = deferred.get(c);
    if (!load) continue;
    deferred.delete(c);
    const [{ addOptions }, specs] = await Promise.all([import('../shared/options.js'), load()]);
    addOptions(c, specs);
  }
}

/** Applies the conventions above to the whole tree; call once, after every command is registered. */
export function applyConventions(program: Command): void {
  addNounAliases(program);
  addListingOutput(program);
  oneLineErrors(program);
  // commander runs this before a subcommand parses its arguments or prints its help (`warren help agent` too).
  for (const c of walk(program)) if (c.commands.length) c.hook('preSubcommand', (_parent, sub) => loadDeferredOptions(sub));
}

/** Every command under `cmd` (itself included), depth first. */
export function walk(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(walk)];
}

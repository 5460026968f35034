/**
 * A process's options, declared once. Each option is a zod schema plus what the command line needs
 * (placeholder, help text, default, environment variable); the commander options, the help text, the
 * config-file keys and the start-up validation all come from that one declaration.
 *
 * The CLI facts sit in a small wrapper object ({@link option}) rather than zod's `.meta()`: metadata is
 * attached to one schema instance and lost by the next `.optional()`, `.prefault()` or `.transform()`,
 * and it is typed as the global registry's loose record; the wrapper keeps them typed and beside the
 * schema, and the builder wraps the schema with its default itself.
 *
 * Where a value can come from several places the first one given wins: the flag, then the environment
 * variable, then the config file, then the default.
 *
 * A config file (src/shared/optionsFile.ts) gives values under the flags' names.
 *
 * Schemas here are zod's functional API (`zod/mini`): it builds the same schemas as `z.string().max()`
 * chains, and a bundle takes only the checks it calls. The agent's single-file build carries this
 * module and the agent's own schemas, and zod's chained API would add ~440 KiB of code to it that
 * Node compiles at every start (~5 MiB of an idle agent's memory). A process may still pass a chained
 * (`zod`) schema to {@link option}: both are the same core schema at run time.
 */
import { Option, type Command } from 'commander';
import { en } from 'zod/locales';
import * as z from 'zod/mini';
import { WarrenError } from './errors.js';
import { parseDuration } from './duration.js';
import { LOG_FORMATS } from './log.js';
import { collect } from './textLists.js';

// zod/mini carries no messages until a locale is set (the chained API sets English when it is imported).
z.config(en());

export type Schema = z.core.$ZodType;

export interface OptionSpec<S extends Schema = Schema> {
  /** Validates what was given (text; a switch's boolean; a repeatable option's list) into the config value. */
  readonly schema: S;
  readonly help: string;
  /** The value's placeholder in --help (`--listen <addr>`); absent: a switch that takes no value. */
  readonly arg?: string;
  /** Shown in --help when it is text; applied by the schema. */
  readonly default?: unknown;
  /** Environment variables that stand in for the flag, the first one set wins. */
  readonly env?: string | readonly string[];
  /** `--x a --x b,c` → ['a', 'b', 'c'] */
  readonly repeatable?: boolean;
  /** Comes only from the environment: no flag, no config-file key. */
  readonly envOnly?: boolean;
  /** Only on the command line, never in a config file (`--config` itself). */
  readonly notInFile?: boolean;
  /** Another option's key: giving both (flag or file, not environment) is a mistake. */
  readonly conflicts?: string;
}

type Spec<S extends Schema> = Omit<OptionSpec<S>, 'schema' | 'default'>;

/** One option. With a default its value is always there (the default goes through the schema too); without, it may be undefined. */
export function option<S extends Schema>(schema: S, spec: Spec<S> & { default: z.input<S> | (() => z.input<S>) }): OptionSpec<z.ZodMiniPrefault<S>>;
export function option<S extends Schema>(schema: S, spec: Spec<S>): OptionSpec<z.ZodMiniOptional<S>>;
export function option<S extends Schema>(schema: S, spec: Spec<S> & { default?: unknown }): OptionSpec {
  if (spec.default === undefined) return { ...spec, schema: z.optional(schema) };
  return { ...spec, schema: z.prefault(schema, spec.default as never) };
}

export type OptionSpecs = Record<string, OptionSpec>;

/** The strict object schema of a set of options: unknown keys are rejected. */
export function optionsSchema<T extends OptionSpecs>(specs: T): OptionsSchema<T> {
  const shape = Object.fromEntries(Object.entries(specs).map(([key, spec]) => [key, spec.schema])) as { [K in keyof T]: T[K]['schema'] };
  return z.strictObject(shape);
}

type OptionsSchema<T extends OptionSpecs> = z.ZodMiniObject<{ [K in keyof T]: T[K]['schema'] }, z.core.$strict>;

/** A process's config: its options, checked together and turned into what the process uses (`refuse` reports a problem). */
export function configSchema<T extends OptionSpecs, C>(specs: T, toConfig: (options: z.output<OptionsSchema<T>>, ctx: z.core.ParsePayload) => C) {
  return z.pipe(optionsSchema(specs), z.transform(toConfig));
}

export const flagName = (key: string): string => `--${kebab(key)}`;
export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envNames = (spec: OptionSpec): readonly string[] => (spec.env === undefined ? [] : typeof spec.env === 'string' ? [spec.env] : spec.env);

/** Adds one commander option per flag, with default and environment variable in its help, and an Environment section. */
export function addOptions(cmd: Command, specs: OptionSpecs): Command {
  for (const [key, spec] of Object.entries(specs)) {
    if (spec.envOnly) continue;
    const extra = [typeof spec.default === 'string' && spec.default !== '' ? `default: ${spec.default}` : '', ...envNames(spec).map((e) => `env: ${e}`)].filter(Boolean);
    const opt = new Option(`${flagName(key)}${spec.arg ? ` <${spec.arg}>` : ''}`, extra.length ? `${spec.help} (${extra.join('; ')})` : spec.help);
    // No commander default: an absent flag must stay absent so the environment and the config file can fill it.
    if (spec.repeatable) opt.argParser((value: string, previous: string[] | undefined) => collect(value, previous ?? []));
    cmd.addOption(opt);
  }
  const env = Object.entries(specs).filter(([, spec]) => spec.env !== undefined);
  if (env.length) {
    const rows = env.map(([key, spec]) => [envNames(spec).join(', '), spec.envOnly ? spec.help : `as ${flagName(key)}`] as const);
    const width = Math.max(...rows.map(([names]) => names.length)) + 2;
    cmd.addHelpText('after', `\nEnvironment (a flag given wins):\n${rows.map(([names, what]) => `  ${names.padEnd(width)}${what}`).join('\n')}`);
  }
  return cmd;
}

export interface OptionSources {
  /** What the command line (or a caller) gave; absent keys are not given. */
  readonly flags: Readonly<Record<string, unknown>>;
  readonly env: NodeJS.ProcessEnv;
  /** What a config file gave (src/shared/optionsFile.ts). */
  readonly file?: OptionsFile | undefined;
}

/** A config file's values by option key, and its path for messages. */
export interface OptionsFile {
  readonly path: string;
  readonly values: Readonly<Record<string, unknown>>;
}

/**
 * Merges the sources by precedence and parses them with `schema` (the options schema, maybe with a
 * transform into the process's config). Any problem throws WARREN_E_CONFIG naming where the bad value
 * came from: `--flag`, the environment variable, or `FILE: key`.
 */
export function parseOptions<S extends Schema>(specs: OptionSpecs, schema: S, sources: OptionSources): z.output<S> {
  const file = sources.file;
  const input: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  const fromEnv = new Set<string>();
  for (const [key, value] of Object.entries(sources.flags)) {
    if (value === undefined) continue;
    input[key] = value;
    from[key] = flagName(key);
  }
  for (const [key, spec] of Object.entries(specs)) {
    if (key in input) continue;
    const env = envNames(spec).find((name) => sources.env[name] !== undefined);
    if (env !== undefined) {
      [input[key], from[key]] = [sources.env[env], env];
      fromEnv.add(key);
    } else if (file && key in file.values) [input[key], from[key]] = [file.values[key], `${file.path}: ${kebab(key)}`];
  }
  // The environment is ambient (set for a whole shell or pod), so only flags and the file can contradict each other.
  const given = (key: string) => key in from && !fromEnv.has(key);
  const conflicting = Object.entries(specs).filter(([key, spec]) => spec.conflicts !== undefined && given(key) && given(spec.conflicts));
  if (conflicting.length) {
    throw new WarrenError('WARREN_E_CONFIG', conflicting.map(([key, spec]) => `${from[key]} and ${from[spec.conflicts!]} are alternatives: give one`).join('; '));
  }
  const parsed = z.safeParse(schema, input);
  if (parsed.success) return parsed.data;
  throw new WarrenError('WARREN_E_CONFIG', parsed.error.issues.map((issue) => describeIssue(issue, from)).join('; '));
}

/** A message that starts with the flag (`--hub must be …`) gets the real source's name in its place; any other is prefixed with it. */
function describeIssue(issue: z.core.$ZodIssue, from: Record<string, string>): string {
  const key = issue.path[0];
  if (typeof key !== 'string') return issue.message;
  const source = from[key] ?? flagName(key);
  const flag = new RegExp(`^${flagName(key)}(?![\\w-])`);
  return flag.test(issue.message) ? issue.message.replace(flag, source) : `${source}: ${issue.message}`;
}

/** Reports a problem from inside a transform; what it returns (z.NEVER) is what a transform that has no value returns. */
export function refuse(ctx: z.core.ParsePayload, message: string): never {
  ctx.issues.push({ code: 'custom', message, input: ctx.value });
  return z.NEVER;
}

/** Text turned into a value by `parse`; what it cannot parse is reported as `"TEXT" problem`. */
export function textAs<T>(parse: (text: string) => T | undefined, problem: string) {
  return z.pipe(
    z.string(),
    z.transform((text: string, ctx): T => {
      const value = parse(text);
      return value !== undefined ? value : refuse(ctx, `"${text}" ${problem}`);
    }),
  );
}

/** A duration in milliseconds, from text like 500ms, 10s, 5m, 8h, 30d. */
export const durationText = textAs((text) => {
  const ms = parseDuration(text);
  return ms !== undefined && ms > 0 ? ms : undefined;
}, 'is not a duration like 500ms, 10s, 5m, 8h, 30d');

/** A comma list, each item checked by `isValid`. */
export const commaList = (isValid: (item: string) => boolean = () => true, problem = '') =>
  z.pipe(
    z.string(),
    z.transform((text: string, ctx) => {
      const items = collect(text, []);
      for (const item of items.filter((i) => !isValid(i))) refuse(ctx, `"${item}" ${problem}`);
      return items;
    }),
  );

/** --log-level, the same for every process. */
export const logLevelOption = option(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { error: 'must be trace, debug, info, warn, error, fatal or silent' }), {
  arg: 'level',
  default: 'info',
  env: 'WARREN_LOG_LEVEL',
  help: 'trace|debug|info|warn|error',
});

/** --log-format, the same for every process; absent: pretty on a terminal, JSON otherwise (src/shared/log.ts). */
export const logFormatOption = option(z.enum(LOG_FORMATS, { error: 'must be json or pretty' }), {
  arg: 'format',
  env: 'WARREN_LOG_FORMAT',
  help: 'json|pretty (default: pretty on a terminal, json otherwise)',
});

/**
 * A process's options from a YAML config file (`warren hub --config FILE`). Keys are the long flag names
 * without `--`, in kebab-case as `--help` prints them, so a flag and its key read the same:
 *
 *     listen: 0.0.0.0:8443
 *     max-handshakes: 128
 *     tls-san: [hub.example.com, 10.0.0.5]
 *
 * Apart from src/shared/options.ts so that a process with no config file (the agent) does not load a
 * YAML parser at start.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { WarrenError } from './errors.js';
import { collect } from './textLists.js';
import { kebab, type OptionSpec, type OptionSpecs, type OptionsFile } from './options.js';

/** Reads FILE's options (`--config FILE`); unknown keys and values of the wrong shape are named, all at once. */
export function readOptionsFile(specs: OptionSpecs, file: string): OptionsFile {
  let text: string;
  let doc: unknown;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new WarrenError('WARREN_E_CONFIG', `--config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new WarrenError('WARREN_E_CONFIG', `--config ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return { path: file, values: {} };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new WarrenError('WARREN_E_CONFIG', `--config ${file}: not a YAML mapping of option names to values`);
  const byKey = new Map(Object.entries(specs).filter(([, spec]) => !spec.envOnly && !spec.notInFile).map(([key, spec]) => [kebab(key), { key, spec }]));
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, value] of Object.entries(doc)) {
    const known = byKey.get(name);
    if (!known) {
      const hint = byKey.has(kebab(name)) ? `write it as "${kebab(name)}"` : 'keys are the flag names without --, as `--help` lists them';
      problems.push(`${file}: unknown key "${name}" (${hint})`);
      continue;
    }
    const v = fileValue(known.spec, value);
    if ('problem' in v) problems.push(`${file}: ${name}: ${v.problem}`);
    else values[known.key] = v.value;
  }
  if (problems.length) throw new WarrenError('WARREN_E_CONFIG', problems.join('; '));
  return { path: file, values };
}

/** YAML's types, brought to what the command line would give: text, a switch's boolean, a list. */
function fileValue(spec: OptionSpec, value: unknown): { value: unknown } | { problem: string } {
  const scalar = typeof value === 'string' || typeof value === 'number';
  if (!spec.arg) return typeof value === 'boolean' ? { value } : { problem: 'must be true or false' };
  if (spec.repeatable) {
    if (scalar) return { value: collect(String(value), []) };
    if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return { value: value.map(String) };
    return { problem: 'must be a value or a list of values' };
  }
  return scalar ? { value: String(value) } : { problem: 'must be a single value' };
}

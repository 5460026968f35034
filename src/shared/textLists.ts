/**
 * Lists typed on a command line or in an environment variable. Kept apart from the option schemas
 * (options.ts, which loads zod) so that the CLI's commands can parse their flags without it.
 */
import { WarrenError } from './errors.js';

/** Repeatable option: `--x a --x b,c` → ['a', 'b', 'c']. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** `--labels env=prod,zone=a` → { env: 'prod', zone: 'a' }; a key alone is an empty value. */
export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z0-9._/-]{1,63}$/.test(key)) throw new WarrenError('WARREN_E_CONFIG', `--labels: "${item}" is not key=value`);
    out[key] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return out;
}

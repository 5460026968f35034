/** Commander option parsers shared by the CLI's commands. */

/** Repeatable option: `--x a --x b,c` → ['a', 'b', 'c']. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

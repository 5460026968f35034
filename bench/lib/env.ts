/** A bound read from the environment: `fallback` when unset or empty, else a positive integer or an error naming the variable. */
export function positiveInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${text}"`);
  return n;
}

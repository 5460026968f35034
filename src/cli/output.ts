/** `-o json|yaml|table` for every listing. */
import { createRequire } from 'node:module';
import type YAML from 'yaml';
import { WarrenError } from '../shared/errors.js';

// yaml is required when -o yaml asks for it: loading it is ~45 ms of every command's start, and most
// runs print a table or JSON.
const require = createRequire(import.meta.url);

export type OutputFormat = 'json' | 'yaml' | 'table';

export function parseFormat(text: string | undefined): OutputFormat {
  const f = text ?? 'table';
  if (f !== 'json' && f !== 'yaml' && f !== 'table') throw new WarrenError('WARREN_E_USAGE', `-o must be json, yaml or table, not "${f}"`);
  return f;
}

export interface Column<T> {
  readonly header: string;
  readonly get: (row: T) => unknown;
}

function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.join(',') : '-';
  if (typeof v === 'object') return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${String(x)}`).join(',') || '-';
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects and arrays were handled above: v is a primitive
  return String(v);
}

export function render<T>(data: T | T[], format: OutputFormat, columns: Column<T>[]): string {
  if (format === 'json') return JSON.stringify(data, null, 2) + '\n';
  if (format === 'yaml') return (require('yaml') as typeof YAML).stringify(data);
  const rows = Array.isArray(data) ? data : [data];
  const table = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => cell(c.get(r))))];
  const widths = columns.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

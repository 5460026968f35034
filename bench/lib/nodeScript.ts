/** Starts a bench helper script (TypeScript through tsx) and waits for its `{"KEY":PORT}` line. */
import type { ChildProcess } from 'node:child_process';
import { type ChildGroup, waitForLine } from '../../test/support/proc.js';

export async function startNodeScript(
  group: ChildGroup, script: string, args: readonly string[], key: string, opts: { env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[] } = {},
): Promise<{ child: ChildProcess; port: number }> {
  const child = group.spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  const m = await waitForLine(child, new RegExp(`^\\{"${key}":(\\d+)\\}$`), { timeoutMs: 20_000, stream: 'stdout' });
  return { child, port: Number(m[1]) };
}

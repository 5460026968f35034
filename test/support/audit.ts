/**
 * Waiting on the hub's audit trail: `warren audit --follow -o json` (backlog, then live rows) until a
 * row matches. A stream's row is written when its relay finishes, which may be just after the client
 * that used it exits, so tests wait on the row instead of reading the table once.
 *
 * @module
 * @example
 *   const row = await waitForAudit(hub, (r) => r.door === 'socks5' && r.result === 'ok', 'the socks stream');
 */
import { StringDecoder } from 'node:string_decoder';
import { ChildGroup, withDeadline } from './proc.js';
import { WARREN_BIN, type HubProc } from './warren.js';

export interface AuditRow {
  id: number;
  kind: string;
  user: string | null;
  door: string | null;
  agent: string | null;
  target: string | null;
  result: string;
  reason: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  /** Kube rows: the request's attributes and the status answered. */
  verb?: string | null;
  status?: number | null;
}

export async function waitForAudit(
  hub: HubProc,
  match: (row: AuditRow) => boolean,
  what: string,
  timeoutMs = 10_000,
  kind: 'stream' | 'agent' | 'admin' | 'kube' | 'shell' = 'stream',
): Promise<AuditRow> {
  const group = new ChildGroup();
  const follow = group.spawn(process.execPath, [WARREN_BIN, 'audit', '--follow', '-o', 'json', '--kind', kind], { env: hub.env(), netns: hub.options.netns });
  const seen: string[] = [];
  try {
    const found = new Promise<AuditRow>((resolve, reject) => {
      const decoder = new StringDecoder('utf8');
      let partial = '';
      follow.stdout!.on('data', (chunk: Buffer) => {
        const lines = (partial + decoder.write(chunk)).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines.filter(Boolean)) {
          seen.push(line);
          const row = JSON.parse(line) as AuditRow;
          if (match(row)) resolve(row);
        }
      });
      follow.once('exit', (code) => reject(new Error(`warren audit --follow exited (${code})`)));
    });
    return await withDeadline(found, timeoutMs, `waiting for ${what} in the audit`).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; rows seen:\n${seen.join('\n')}`);
    });
  } finally {
    await group.killAll();
    group.dispose();
  }
}

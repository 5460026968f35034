/**
 * The parent's side of the load process (bench/lib/load.ts, forked once, commands over IPC): `load()`
 * sends one bounded test and resolves with its result.
 */
import path from 'node:path';
import { fork } from 'node:child_process';
import { withDeadline } from '../../test/support/proc.js';
import type { Endpoint } from './endpoints.js';
import type { LoadResult, LoadTest } from './load.js';

export interface LoadClient {
  readonly load: <T extends LoadResult>(endpoint: Endpoint, test: LoadTest) => Promise<T>;
  readonly close: () => void;
}

export function startLoadProcess(): LoadClient {
  const loadProc = fork(path.resolve('bench/lib/load.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  loadProc.on('message', (m: { id: number; result?: LoadResult; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(m.error));
    else p?.resolve(m.result!);
  });
  loadProc.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`load process exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    load: <T extends LoadResult>(endpoint: Endpoint, test: LoadTest): Promise<T> => {
      const id = nextId++;
      const answer = new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (r: LoadResult) => void, reject });
        loadProc.send({ id, endpoint, test });
      });
      // Every test bounds itself; this only catches a hung path (a lost ping would otherwise wait forever).
      return withDeadline(answer, (test.seconds * 2 + 30) * 1000, `${test.kind} test`);
    },
    close: () => loadProc.disconnect(),
  };
}

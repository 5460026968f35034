/**
 * The audit trail: every stream, kube request, agent connection and admin change becomes a store row,
 * and live followers (`warren audit --follow`) get each row as it is written.
 *
 * Rows are written in batches, one store transaction each (most of an audit write is its commit): a
 * batch is written when the event-loop turn that started it ends, or, when the previous batch was
 * written less than BATCH_INTERVAL_MS ago, that long after it. So a quiet hub writes every row at once
 * and a busy one commits at most every few milliseconds. `record()` resolves once its row is stored.
 *
 * A stream's row after its relay ended, or a kube request's after its answer, may be `deferred`:
 * nobody waits on it, and written at once its commit would land just when the client opens its next
 * connection or sends its next request (a client working through them one at a time waited behind it
 * every time, and a commit per row costs the hub ~0.1 ms of CPU per kube request). Such rows wait up
 * to DEFER_MS, or until DEFER_MAX_ROWS are pending, and go with any other row's batch; drain() writes
 * them at once.
 */
import { EventEmitter } from 'node:events';
import type { AuditFilter, AuditRow, Store } from '../store/store.js';
import type { Logger } from '../shared/log.js';

export type AuditEntry = AuditRow & { id: number };

const BATCH_INTERVAL_MS = 5;
const DEFER_MS = 25;
const DEFER_MAX_ROWS = 256;

interface Pending {
  readonly row: AuditRow;
  readonly done: () => void;
}

export class Audit {
  private readonly events = new EventEmitter();
  private pending: Pending[] = [];
  /** The chain of batch writes, in order. */
  private written: Promise<void> = Promise.resolve();
  private lastWrite = -Infinity;
  /** The next batch's timer (or immediate) and when it is due (performance.now()). */
  private next: { readonly cancel: () => void; readonly due: number } | undefined;

  constructor(private readonly store: Store, private readonly log: Logger) {
    this.events.setMaxListeners(0);
  }

  /**
   * Never rejects: a failing store is logged, the request it describes is not failed after the fact.
   * `deferred`: the row may wait for a later batch (see above).
   */
  record(row: Partial<AuditRow> & Pick<AuditRow, 'kind' | 'result'>, o?: { readonly deferred?: boolean }): Promise<void> {
    const full: AuditRow = {
      time: Date.now(), user: null, door: null, agent: null, target: null, reason: null,
      bytesIn: null, bytesOut: null, durationMs: null, source: null, verb: null, resource: null, namespace: null, name: null, status: null, ...row,
    };
    return new Promise((done) => {
      const n = this.pending.push({ row: full, done });
      const now = performance.now();
      const soonest = this.lastWrite + BATCH_INTERVAL_MS;
      this.schedule(o?.deferred && n < DEFER_MAX_ROWS ? Math.max(now + DEFER_MS, soonest) : soonest, now);
    });
  }

  /** Resolves once every row recorded so far is written; the hub awaits it before closing the store. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.next) this.fire();
      const w = this.written;
      await w;
      if (w === this.written && this.pending.length === 0) return;
    }
  }

  /** Makes sure a batch is written by `due` (an earlier one scheduled stays). */
  private schedule(due: number, now: number): void {
    if (this.next && this.next.due <= due) return;
    this.next?.cancel();
    const wait = due - now;
    if (wait > 0) {
      const t = setTimeout(() => this.fire(), wait);
      this.next = { due, cancel: () => clearTimeout(t) };
    } else {
      const t = setImmediate(() => this.fire());
      this.next = { due, cancel: () => clearImmediate(t) };
    }
  }

  private fire(): void {
    this.next?.cancel();
    this.next = undefined;
    this.written = this.written.then(() => this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.lastWrite = performance.now();
    this.pending = [];
    try {
      const ids = await this.store.appendAudit(batch.map((p) => p.row));
      batch.forEach((p, i) => this.events.emit('row', { ...p.row, id: ids[i]! }));
    } catch (err) {
      this.log.error({ err: (err as Error).message, rows: batch.length, kinds: [...new Set(batch.map((p) => p.row.kind))] }, 'audit write failed');
    }
    for (const p of batch) p.done();
  }

  query(filter: AuditFilter): Promise<AuditEntry[]> {
    return this.store.queryAudit(filter);
  }

  /** Calls `fn` for every new row; returns the unsubscribe function. */
  subscribe(fn: (row: AuditEntry) => void): () => void {
    this.events.on('row', fn);
    return () => this.events.off('row', fn);
  }
}

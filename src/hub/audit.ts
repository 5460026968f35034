/**
 * The audit trail: every stream, kube request, agent connection and admin change becomes a store row,
 * and live followers (`warren audit --follow`) get each row as it is written.
 *
 * Rows are written in batches, one store transaction each (most of an audit write is its commit): a
 * batch is written when the event-loop turn that started it ends, or, when the previous batch was
 * written less than BATCH_INTERVAL_MS ago, that long after it. So a quiet hub writes every row at once
 * and a busy one commits at most every few milliseconds. `record()` resolves once its row is stored.
 */
import { EventEmitter } from 'node:events';
import type { AuditFilter, AuditRow, Store } from '../store/store.js';
import type { Logger } from '../shared/log.js';

export type AuditEntry = AuditRow & { id: number };

const BATCH_INTERVAL_MS = 5;

interface Pending {
  readonly row: AuditRow;
  readonly done: () => void;
}

export class Audit {
  private readonly events = new EventEmitter();
  private pending: Pending[] = [];
  /** The chain of batch writes, in order; each link waits until its batch is due (batchDue). */
  private written: Promise<void> = Promise.resolve();
  private lastWrite = -Infinity;

  constructor(private readonly store: Store, private readonly log: Logger) {
    this.events.setMaxListeners(0);
  }

  /** Never rejects: a failing store is logged, the request it describes is not failed after the fact. */
  record(row: Partial<AuditRow> & Pick<AuditRow, 'kind' | 'result'>): Promise<void> {
    const full: AuditRow = {
      time: Date.now(), user: null, door: null, agent: null, target: null, reason: null,
      bytesIn: null, bytesOut: null, durationMs: null, source: null, verb: null, resource: null, namespace: null, name: null, status: null, ...row,
    };
    return new Promise((done) => {
      if (this.pending.push({ row: full, done }) === 1) {
        this.written = this.written.then(() => this.batchDue()).then(() => this.flush());
      }
    });
  }

  /** Resolves once every row recorded so far is written; the hub awaits it before closing the store. */
  async drain(): Promise<void> {
    for (let w = this.written; ; w = this.written) {
      await w;
      if (w === this.written) return;
    }
  }

  private batchDue(): Promise<void> {
    const wait = this.lastWrite + BATCH_INTERVAL_MS - performance.now();
    return new Promise((due) => (wait > 0 ? setTimeout(due, wait) : setImmediate(due)));
  }

  private async flush(): Promise<void> {
    this.lastWrite = performance.now();
    const batch = this.pending;
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

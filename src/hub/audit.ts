/**
 * The audit trail: every stream, kube request, agent connection and admin change becomes a store row,
 * and live followers (`warren audit --follow`) get each row as it is written.
 */
import { EventEmitter } from 'node:events';
import type { AuditFilter, AuditRow, Store } from '../store/store.js';
import type { Logger } from '../log.js';

export type AuditEntry = AuditRow & { id: number };

export class Audit {
  private readonly events = new EventEmitter();

  constructor(private readonly store: Store, private readonly log: Logger) {
    this.events.setMaxListeners(0);
  }

  /** Never throws: a failing store is logged, the request it describes is not failed after the fact. */
  async record(row: Partial<AuditRow> & Pick<AuditRow, 'kind' | 'result'>): Promise<void> {
    const full: AuditRow = {
      time: Date.now(), user: null, door: null, agent: null, target: null, reason: null,
      bytesIn: null, bytesOut: null, durationMs: null, source: null, ...row,
    };
    try {
      const id = await this.store.appendAudit(full);
      this.events.emit('row', { ...full, id });
    } catch (err) {
      this.log.error({ err: (err as Error).message, kind: full.kind }, 'audit write failed');
    }
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

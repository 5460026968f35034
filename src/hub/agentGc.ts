/**
 * `warren hub --agent-gc-after 7d`: agents that have not been connected for that long are removed, as
 * `warren agents rm` would (the certificate on record is dropped, so the old identity can never come
 * back), each removal audited. For agents that come and go with pods or short-lived machines: without
 * it every replaced pod stays listed "offline" forever.
 *
 * "Not connected for" counts from the agent's last tunnel (its last-seen time), or from its join when
 * it never connected. A connected agent is never removed, however old.
 */
import { formatDuration } from '../shared/duration.js';
import type { Logger } from '../shared/log.js';
import type { Store } from '../store/store.js';
import type { AgentTunnels } from './agentTunnels.js';
import type { Audit } from './audit.js';

export interface AgentGcOptions {
  readonly afterMs: number;
  readonly store: Store;
  readonly tunnels: Pick<AgentTunnels, 'get' | 'forget'>;
  readonly audit: Audit;
  readonly log: Logger;
  readonly now?: () => number;
}

/** How often to look: a tenth of the age limit, between one second and one minute. */
export function sweepIntervalMs(afterMs: number): number {
  return Math.min(60_000, Math.max(1_000, Math.floor(afterMs / 10)));
}

export class AgentGc {
  private readonly timer: NodeJS.Timeout;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: AgentGcOptions) {
    this.timer = setInterval(() => {
      this.running = this.sweep().catch((err: unknown) => opts.log.error({ err: (err as Error).message }, 'agent garbage collection failed'));
    }, sweepIntervalMs(opts.afterMs));
    this.timer.unref();
  }

  /** Removes every agent not connected for `afterMs`; resolves with their names. */
  async sweep(): Promise<string[]> {
    const now = (this.opts.now ?? Date.now)();
    const removed: string[] = [];
    for (const agent of await this.opts.store.listAgents()) {
      const since = agent.lastSeen ?? agent.createdAt;
      if (now - since < this.opts.afterMs || this.opts.tunnels.get(agent.name)) continue;
      if (!(await this.opts.store.deleteAgent(agent.name))) continue;
      // It may have connected while the row was being deleted: its tunnel goes with its record.
      this.opts.tunnels.forget(agent.name);
      const reason = `agent removed: not connected for ${formatDuration(Math.floor((now - since) / 1000) * 1000)} (--agent-gc-after ${formatDuration(this.opts.afterMs)}); certificate revoked`;
      this.opts.log.info({ agent: agent.name }, reason);
      await this.opts.audit.record({ kind: 'agent', result: 'ok', agent: agent.name, user: 'hub', target: `agent/${agent.name}`, reason });
      removed.push(agent.name);
    }
    return removed;
  }

  /** Stops sweeping; waits for a sweep in progress. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

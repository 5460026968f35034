/**
 * Every stream and kube request the opener admitted and that is still open, with what it was admitted
 * for, so that a revocation (a token, grant or agent deleted) can find and close what is no longer
 * allowed instead of letting it run until the client hangs up.
 */
import type { Principal } from '../doors/door.js';
import { InFlight } from './inFlight.js';

/** What an admitted use reaches: a target through an agent, or a cluster's API. */
export type Reach =
  | { readonly agent: string; readonly host: string; readonly port: number }
  | { readonly cluster: string };

export interface ActiveStream {
  readonly principal: Principal;
  /** For a target, the agent is the one that took the stream once it is dialled. */
  reach: Reach;
  /** The agent carrying it, once known (a pooled kube request learns it when its stream is chosen). */
  agent: string | undefined;
  /** Set by revoke(): why the use was cut (for its audit row). */
  revoked: string | undefined;
  /** Closes the use now; its audit row then says `revoked`. Called at most once. */
  readonly onRevoke: () => void;
}

export class ActiveStreams {
  private readonly streams = new Set<ActiveStream>();
  /** Uses not ended yet, revoked ones included until they have closed. */
  private readonly open = new InFlight();

  add(s: ActiveStream): () => void {
    this.streams.add(s);
    const end = this.open.begin();
    return () => {
      this.streams.delete(s);
      end();
    };
  }

  /** Resolves when every use has ended, or after `timeoutMs`. */
  empty(timeoutMs: number): Promise<void> {
    return this.open.settled(timeoutMs);
  }

  get size(): number {
    return this.streams.size;
  }

  /** Revokes every open use for which `stillAllowed` says no; returns how many were cut. */
  async revokeWhere(stillAllowed: (s: ActiveStream) => Promise<boolean> | boolean, why: string): Promise<number> {
    let cut = 0;
    for (const s of [...this.streams]) {
      if (s.revoked !== undefined || (await stillAllowed(s))) continue;
      // Removed while the check awaited: it ended by itself.
      if (!this.streams.has(s)) continue;
      s.revoked = why;
      this.streams.delete(s);
      cut++;
      s.onRevoke();
    }
    return cut;
  }
}

/**
 * Changes made on one hub that every other hub on the same store must act on at once (PostgreSQL
 * NOTIFY through the store; with SQLite there is one hub and this is in-process).
 *
 * The hub that made a change acts on it itself before answering (so its response and audit rows
 * already reflect it) and publishes it; the others act when the notification arrives, within
 * milliseconds. A notification carries only what to re-check, never data: the store stays the truth.
 * When the listening connection was lost, notifications may have been missed, so every hub re-checks
 * everything once it is back.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../shared/log.js';
import type { Store } from '../store/store.js';

export type Change =
  /** Tokens, grants or agents changed: close open streams no longer allowed, drop removed agents' tunnels. */
  | { readonly kind: 'revoke'; readonly why: string }
  /** Grants or access tokens were written: forget what was read of them (src/hub/policyCache.ts). */
  | { readonly kind: 'policy' }
  /** A hub joined or left the set (src/hub/hubMesh.ts). */
  | { readonly kind: 'hubs' }
  /** An agent's tunnel opened or closed on the publishing hub: re-read where it is. */
  | { readonly kind: 'presence'; readonly agent: string }
  /** Forwards were created or removed: re-read them (and who listens on the hub-side entries). */
  | { readonly kind: 'forwards' }
  /** Notifications may have been missed: re-read hubs and presence. Never published, made locally. */
  | { readonly kind: 'resync' };

interface Envelope {
  readonly origin: string;
  readonly change: Change;
}

export class ChangeFeed {
  /** Tells this hub's own notifications from the others'. */
  readonly origin = randomBytes(8).toString('hex');
  private readonly unlisten: () => void;

  constructor(
    private readonly store: Store,
    private readonly act: (change: Change) => Promise<unknown>,
    private readonly log: Logger,
  ) {
    this.unlisten = store.listen((payload) => this.received(payload));
  }

  /** Lets the other hubs know; a failure is logged (the change itself is already in the store). */
  async publish(change: Change): Promise<void> {
    const envelope: Envelope = { origin: this.origin, change };
    await this.store.notify(JSON.stringify(envelope)).catch((err: unknown) => this.log.error({ err: (err as Error).message, change }, 'could not tell other hubs of a change'));
  }

  close(): void {
    this.unlisten();
  }

  private received(payload: string | null): void {
    let changes: Change[];
    if (payload === null) {
      changes = [{ kind: 'policy' }, { kind: 'revoke', why: 'change feed reconnected' }, { kind: 'resync' }, { kind: 'forwards' }];
    } else {
      let envelope: Envelope;
      try {
        envelope = JSON.parse(payload) as Envelope;
      } catch {
        return this.log.warn('ignored a malformed change notification');
      }
      if (envelope.origin === this.origin) return;
      changes = [envelope.change];
    }
    for (const change of changes) {
      this.act(change).catch((err: unknown) => this.log.error({ err: (err as Error).message, change }, 'acting on a change from another hub failed'));
    }
  }
}

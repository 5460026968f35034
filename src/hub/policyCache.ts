/**
 * Grants and access-token rows served from memory, so that opening a stream asks the store nothing:
 * every door reads them on every stream (the token behind a credential, then the grants that allow
 * the target), and with several hubs on one PostgreSQL those reads were the database's whole load.
 *
 * Freshness: a policy write through this hub empties the cache before it returns; a write on another
 * hub reaches this one as a change notification (`invalidate`, within milliseconds, src/hub/changeFeed.ts),
 * and a lost notification connection empties it too. As a last resort an entry is re-read after
 * MAX_AGE_MS. Only rows that exist are kept: an unknown token id is asked for again each time (it
 * needs a signature this hub made, so nobody can flood the store with them).
 */
import type { AccessTokenRecord, GrantRecord, Store } from '../store/store.js';

const MAX_AGE_MS = 30_000;
/** Token rows kept at most; past it the map starts again (a hub sees far fewer distinct tokens). */
const MAX_TOKENS = 10_000;
/**
 * Store methods after which the cached reads may be wrong. A new token is not one of them: unknown
 * ids are never kept, so nothing cached can contradict it.
 */
const POLICY_WRITES: ReadonlySet<PropertyKey> = new Set(['createGrant', 'deleteGrant', 'revokeAccessToken']);

interface Entry<T> {
  readonly at: number;
  readonly value: Promise<T>;
}

export class PolicyCache {
  /** The store with `listGrants` and `getAccessToken` answered from memory; every other call goes through. */
  readonly store: Store;
  private grants: Entry<GrantRecord[]> | undefined;
  private readonly tokens = new Map<string, Entry<AccessTokenRecord | undefined>>();

  /** `written` runs after each policy write made through this hub, to tell the other hubs. */
  constructor(private readonly inner: Store, written: () => void) {
    const overrides: Partial<Record<PropertyKey, unknown>> = {
      listGrants: () => this.listGrants(),
      getAccessToken: (id: string) => this.getAccessToken(id),
    };
    // A Proxy rather than a class that repeats the Store interface method by method: only three
    // writes and two reads differ, everything else is the store's own method.
    this.store = new Proxy(inner, {
      get: (target, prop) => {
        if (prop in overrides) return overrides[prop];
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (!POLICY_WRITES.has(prop)) return method.bind(target);
        return async (...args: unknown[]) => {
          try {
            return await method.apply(target, args);
          } finally {
            this.invalidate();
            written();
          }
        };
      },
    });
  }

  /** Forgets everything cached: the next read asks the store. */
  invalidate(): void {
    this.grants = undefined;
    this.tokens.clear();
  }

  private async listGrants(): Promise<GrantRecord[]> {
    let entry = this.grants;
    if (!entry || Date.now() - entry.at > MAX_AGE_MS) {
      const read: Entry<GrantRecord[]> = (entry = { at: Date.now(), value: this.inner.listGrants() });
      this.grants = read;
      // A failed read is not kept (unless something newer replaced it already).
      void read.value.catch(() => {
        if (this.grants === read) this.grants = undefined;
      });
    }
    // A copy: callers sort and filter what they get, the cached list stays as read.
    return [...(await entry.value)];
  }

  private async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    let entry = this.tokens.get(id);
    if (!entry || Date.now() - entry.at > MAX_AGE_MS) {
      if (this.tokens.size >= MAX_TOKENS) this.tokens.clear();
      const read: Entry<AccessTokenRecord | undefined> = (entry = { at: Date.now(), value: this.inner.getAccessToken(id) });
      this.tokens.set(id, read);
      // Unknown ids and failed reads are not kept.
      const forget = (): void => {
        if (this.tokens.get(id) === read) this.tokens.delete(id);
      };
      void read.value.then((row) => row === undefined && forget(), forget);
    }
    return entry.value;
  }
}

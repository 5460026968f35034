/**
 * Signed tokens whose signature was checked, remembered by their SHA-256 until they expire. jose
 * verifies with WebCrypto, a job on libuv's thread pool (~160 µs, milliseconds when the pool is busy),
 * and a client sends the same token with every connection and every request: each `warren connect`,
 * CONNECT and SOCKS stream, kube request. Only a success is remembered, with what its check gave, and
 * only until its expiry; a verifier that reads more (the store row of an access token: revocation)
 * still does so on every use.
 */
import { createHash } from 'node:crypto';

/** Entries at most; beyond, the oldest is forgotten (it is checked again at its next use). */
const MAX_ENTRIES = 10_000;

export class VerifiedTokens<T> {
  private readonly byHash = new Map<string, { value: T; validUntilS: number }>();

  /** What `token`'s check gave, if it passed and `nowS` (epoch seconds) is before `validUntilS`. */
  get(token: string, nowS: number): T | undefined {
    const key = hash(token);
    const hit = this.byHash.get(key);
    if (!hit) return undefined;
    if (nowS < hit.validUntilS) return hit.value;
    this.byHash.delete(key);
    return undefined;
  }

  set(token: string, value: T, validUntilS: number): void {
    if (this.byHash.size >= MAX_ENTRIES) this.byHash.delete(this.byHash.keys().next().value!);
    this.byHash.set(hash(token), { value, validUntilS });
  }
}

const hash = (token: string): string => createHash('sha256').update(token).digest('base64');

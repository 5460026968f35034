/**
 * Hub-issued access tokens: JWTs signed ES256 by the hub's signing key (the algorithm is pinned on
 * verification, so `alg: none` or an HS256 token forged with the public key is refused). Each token
 * also has a store row, so it can be listed and revoked before it expires; the row, not the JWT, is
 * what names the user and groups. The JWT carries only issuer, id and expiry, which keeps every token
 * under 255 bytes: it fits an RFC 1929 SOCKS5 password and a Basic password of any client.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { WarrenError } from '../shared/errors.js';
import type { Store } from '../store/store.js';
import type { Principal } from '../doors/door.js';

export const ADMIN_GROUP = 'warren:admins';

/** Signature checks remembered (see {@link AccessTokens.verify}); beyond this the oldest is forgotten. */
const VERIFIED_MAX = 10_000;

export interface IssuedToken {
  readonly token: string;
  readonly id: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly expiresAt: string | null;
}

export class AccessTokens {
  /**
   * Tokens whose signature was checked, by their SHA-256, with the claims the check gave. jose verifies
   * with WebCrypto, a job on libuv's thread pool: ~160 µs, and milliseconds when the pool is busy, on
   * every connection of a client (each `warren connect`, CONNECT and SOCKS stream, kube request) that
   * sends the same token again. The store row is read on every call all the same, so a revocation
   * applies at once; the expiry is checked on every call.
   */
  private readonly verified = new Map<string, { jti: string | undefined; exp: number | undefined }>();

  constructor(
    private readonly store: Store,
    private readonly signingKey: KeyObject,
    private readonly verifyKey: KeyObject,
    private readonly issuer: string,
    /** Epoch ms: issuing and expiry (jose's too). */
    private readonly now: () => number = Date.now,
  ) {}

  async issue(opts: { user: string; groups: readonly string[]; ttlMs: number | null; createdBy: string }): Promise<IssuedToken> {
    // Hex behind a prefix: an id is typed on command lines, where a leading '-' would read as an option.
    const id = 't_' + randomBytes(9).toString('hex');
    const now = this.now();
    const expiresAt = opts.ttlMs === null ? null : now + opts.ttlMs;
    let jwt = new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer(this.issuer).setJti(id);
    if (expiresAt !== null) jwt = jwt.setExpirationTime(Math.floor(expiresAt / 1000));
    const token = await jwt.sign(this.signingKey);
    await this.store.createAccessToken({
      id, user: opts.user, groups: opts.groups, expiresAt, createdAt: now, createdBy: opts.createdBy, revokedAt: null,
    });
    return { token, id, user: opts.user, groups: opts.groups, expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() };
  }

  /** True when the token looks like one of ours (so other verifiers, e.g. external JWTs, can be tried). */
  async verify(token: string): Promise<Principal> {
    const key = createHash('sha256').update(token).digest('base64');
    let claims = this.verified.get(key);
    // An expired token goes through jose again, for its own error.
    if (claims?.exp !== undefined && claims.exp <= Math.floor(this.now() / 1000)) {
      this.verified.delete(key);
      claims = undefined;
    }
    if (!claims) {
      claims = await this.checkSignature(token);
      if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, claims);
    }
    const row = claims.jti ? await this.store.getAccessToken(claims.jti) : undefined;
    if (!row || row.revokedAt !== null) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'access token was revoked or is unknown to this hub');
    return { user: row.user, groups: row.groups, via: 'token', tokenId: row.id };
  }

  private async checkSignature(token: string): Promise<{ jti: string | undefined; exp: number | undefined }> {
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, { algorithms: ['ES256'], issuer: this.issuer, currentDate: new Date(this.now()) });
      return { jti: payload.jti, exp: payload.exp };
    } catch (err) {
      const expired = err instanceof joseErrors.JWTExpired;
      throw new WarrenError('WARREN_E_UNAUTHENTICATED', expired ? 'access token expired; ask an admin for a new one (`warren token create`)' : 'access token is not valid for this hub');
    }
  }
}

export function isAdmin(p: Principal): boolean {
  return p.groups.includes(ADMIN_GROUP);
}

/**
 * Hub-issued access tokens: JWTs signed ES256 by the hub's signing key (the algorithm is pinned on
 * verification, so `alg: none` or an HS256 token forged with the public key is refused). Each token
 * also has a store row, so it can be listed and revoked before it expires; the row, not the JWT, is
 * what names the user and groups. The JWT carries only issuer, id and expiry, which keeps every token
 * under 255 bytes: it fits an RFC 1929 SOCKS5 password and a Basic password of any client.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, decodeJwt, jwtVerify, errors as joseErrors } from 'jose';
import { WarrenError } from '../shared/errors.js';
import type { Store } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { VerifiedTokens } from './verifiedTokens.js';

export const ADMIN_GROUP = 'warren:admins';

export interface IssuedToken {
  readonly token: string;
  readonly id: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly expiresAt: string | null;
}

export class AccessTokens {
  /** Signatures checked, with the token's id; its store row is still read on every use (revocation). */
  private readonly verified = new VerifiedTokens<string | undefined>();

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
    // An expired token is not found, and goes through jose again for its own error.
    const jti = this.verified.get(token, Math.floor(this.now() / 1000)) ?? (await this.checkSignature(token));
    const row = jti ? await this.store.getAccessToken(jti) : undefined;
    if (!row || row.revokedAt !== null) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'access token was revoked or is unknown to this hub');
    return { user: row.user, groups: row.groups, via: 'token', tokenId: row.id };
  }

  /** The token's id once its signature, issuer and expiry are checked (and remembered until it expires). */
  private async checkSignature(token: string): Promise<string | undefined> {
    try {
      // Not ours (an external JWT, tried next by HubAuth, or garbage): refused without the signature check.
      if (decodeJwt(token).iss !== this.issuer) throw new Error('another issuer');
      const { payload } = await jwtVerify(token, this.verifyKey, { algorithms: ['ES256'], issuer: this.issuer, currentDate: new Date(this.now()) });
      this.verified.set(token, payload.jti, payload.exp ?? Infinity);
      return payload.jti;
    } catch (err) {
      const expired = err instanceof joseErrors.JWTExpired;
      throw new WarrenError('WARREN_E_UNAUTHENTICATED', expired ? 'access token expired; ask an admin for a new one (`warren token create`)' : 'access token is not valid for this hub');
    }
  }
}

export function isAdmin(p: Principal): boolean {
  return p.groups.includes(ADMIN_GROUP);
}

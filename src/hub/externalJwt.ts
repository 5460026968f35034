/**
 * JWTs from a trusted external issuer (`warren hub --jwt-public-key FILE`), e.g. multikube-style
 * tokens:
 *
 *   {"sub": "developer", "groups": ["dev"], "ctx": "minikube", "exp": 1767225600}
 *
 *   sub      the user (required)
 *   groups   optional array of group names; names starting with "warren:" are dropped, so an external
 *            issuer can never mint a Warren admin (warren:admins) or another hub-internal group
 *   ctx      optional: the cluster a request to the API root (/api, /apis, …) is routed to
 *   exp/nbf  honoured when present (30 s of clock skew allowed)
 *
 * The key file is a PEM public key or an X.509 certificate. Its type pins the algorithm — RSA (≥ 2048
 * bits) → RS256, EC P-256 → ES256 — so neither `alg: none`, nor an HMAC token "signed" with the public
 * key, nor any other algorithm is accepted.
 */
import fs from 'node:fs';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { WarrenError } from '../errors.js';
import type { Principal } from './doors/door.js';
import type { ExternalVerifier } from './auth.js';

export type ExternalAlg = 'RS256' | 'ES256';

export interface ExternalClaims {
  readonly principal: Principal;
  /** The multikube routing claim: a cluster name. */
  readonly ctx: string | undefined;
}

const RESERVED_GROUP_PREFIX = 'warren:';
const MAX_GROUPS = 100;

export class ExternalJwt {
  constructor(
    readonly key: KeyObject,
    readonly alg: ExternalAlg,
  ) {}

  /** Reads and checks the key at start-up; throws WARREN_E_CONFIG with what is wrong. */
  static fromFile(file: string): ExternalJwt {
    let pem: string;
    try {
      pem = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new WarrenError('WARREN_E_CONFIG', `--jwt-public-key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return ExternalJwt.fromPem(pem, `--jwt-public-key ${file}`);
  }

  static fromPem(pem: string, what = 'JWT public key'): ExternalJwt {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new WarrenError('WARREN_E_CONFIG', `${what}: this is a private key; give the issuer's public key or certificate`);
    let key: KeyObject;
    try {
      key = /-----BEGIN CERTIFICATE-----/.test(pem) ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    } catch (err) {
      throw new WarrenError('WARREN_E_CONFIG', `${what}: not a PEM public key or certificate (${(err as Error).message})`);
    }
    const details = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === 'rsa') {
      if ((details.modulusLength ?? 0) < 2048) throw new WarrenError('WARREN_E_CONFIG', `${what}: RSA keys must have at least 2048 bits`);
      return new ExternalJwt(key, 'RS256');
    }
    if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return new ExternalJwt(key, 'ES256');
    throw new WarrenError('WARREN_E_CONFIG', `${what}: key type ${key.asymmetricKeyType}${details.namedCurve ? ` (${details.namedCurve})` : ''} is not supported; use RSA (RS256) or EC P-256 (ES256)`);
  }

  /** Verifies a token; throws WARREN_E_UNAUTHENTICATED saying why (never quoting the token). */
  async verify(token: string): Promise<ExternalClaims> {
    const r = await this.check(token);
    if ('error' in r) throw r.error;
    return r.claims;
  }

  /**
   * For HubAuth (every door): undefined for a token this key did not sign (it may be the hub's own, or
   * garbage — the hub's error then stands); throws for a token it signed that is expired or malformed.
   */
  verifier(): ExternalVerifier {
    return async (token) => {
      const r = await this.check(token);
      if ('claims' in r) return r.claims.principal;
      if (r.signedByKey) throw r.error;
      return undefined;
    };
  }

  private async check(token: string): Promise<{ claims: ExternalClaims } | { error: WarrenError; signedByKey: boolean }> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: [this.alg], clockTolerance: 30 }));
    } catch (err) {
      // jose checks the signature before the claims: an expired or not-yet-valid token was signed by this key.
      const signedByKey = err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed;
      return { error: new WarrenError('WARREN_E_UNAUTHENTICATED', verifyFailure(err, this.alg)), signedByKey };
    }
    try {
      return { claims: claimsOf(payload) };
    } catch (err) {
      return { error: err as WarrenError, signedByKey: true };
    }
  }
}

/** The `ctx` claim of a JWT-looking token, without verifying it (to decide where a request goes). */
export function unverifiedCtx(token: string): string | undefined {
  if (token.length > 8192 || token.split('.').length !== 3) return undefined;
  try {
    const ctx = decodeJwt(token).ctx;
    return typeof ctx === 'string' && ctx !== '' ? ctx : undefined;
  } catch {
    return undefined;
  }
}

function claimsOf(payload: JWTPayload): ExternalClaims {
  const bad = (why: string) => new WarrenError('WARREN_E_UNAUTHENTICATED', `external token rejected: ${why}`);
  if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 253) throw bad('sub must name the user');
  let groups: string[] = [];
  if (payload.groups !== undefined) {
    if (!Array.isArray(payload.groups) || payload.groups.length > MAX_GROUPS || !payload.groups.every((g) => typeof g === 'string' && g !== '' && g.length <= 253)) {
      throw bad('groups must be an array of group names');
    }
    groups = [...new Set(payload.groups as string[])].filter((g) => !g.startsWith(RESERVED_GROUP_PREFIX));
  }
  if (payload.ctx !== undefined && (typeof payload.ctx !== 'string' || payload.ctx === '')) throw bad('ctx must be a cluster name');
  return { principal: { user: payload.sub, groups, via: 'jwt' }, ctx: payload.ctx as string | undefined };
}

function verifyFailure(err: unknown, alg: ExternalAlg): string {
  if (err instanceof joseErrors.JWTExpired) return 'external token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `external token rejected: ${err.claim} claim check failed (${err.reason})`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `external token is not signed with ${alg}, the algorithm of the configured key`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'external token signature does not verify with the configured key';
  return 'token is not a valid JWT';
}

/**
 * JWTs from a trusted external issuer (`warren hub --jwt-public-key FILE`), e.g. multikube-style
 * tokens:
 *
 *   {"sub": "developer", "groups": ["dev"], "ctx": "minikube", "iat": 1767222000, "exp": 1767225600}
 *
 *   sub      the user (required); the hub calls it `jwt:developer`
 *   groups   optional array of group names, each also `jwt:`-prefixed (`jwt:dev`); names starting with
 *            "warren:" are dropped, so an external issuer can never mint a Warren admin (warren:admins)
 *            or another hub-internal group
 *   ctx      optional: the cluster a request to the API root (/api, /apis, …) is routed to
 *   exp      required, and at most --jwt-max-ttl after iat (after now when there is no iat): a leaked
 *            token must not work for longer than the operator chose
 *   nbf      honoured when present (30 s of clock skew allowed, as for exp)
 *   iss/aud  must match --jwt-issuer / --jwt-audience when those are set
 *
 * The `jwt:` prefix keeps the issuer's name space apart from the hub's: whoever holds the issuer's key
 * can name any subject, so without it `sub: admin-bob` would get every grant an admin made for the hub
 * user admin-bob. `--jwt-trust-names` takes the names as they are, for an issuer that is the same
 * directory the hub's own users come from.
 *
 * The key file is a PEM public key or an X.509 certificate. Its type pins the algorithm — RSA (≥ 2048
 * bits) → RS256, EC P-256 → ES256 — so neither `alg: none`, nor an HMAC token "signed" with the public
 * key, nor any other algorithm is accepted.
 */
import fs from 'node:fs';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { formatDuration } from '../shared/duration.js';
import { WarrenError } from '../shared/errors.js';
import type { DoorName, Principal } from '../doors/door.js';
import type { ExternalIssuer } from './auth.js';
import { VerifiedTokens } from './verifiedTokens.js';

export type ExternalAlg = 'RS256' | 'ES256';

export interface ExternalClaims {
  readonly principal: Principal;
  /** The multikube routing claim: a cluster name. */
  readonly ctx: string | undefined;
}

/** What the hub demands of an external token beyond its signature (hub flags --jwt-…). */
export interface ExternalJwtPolicy {
  /** Longest lifetime accepted: exp − iat, or exp − now without iat. */
  readonly maxTtlMs: number;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  /** Take sub and groups as hub names instead of `jwt:NAME`. */
  readonly trustNames: boolean;
  /** Where these tokens are a credential (--jwt-doors); HubAuth refuses them at every other door. */
  readonly doors: readonly DoorName[];
}

/** Prefix of every external subject and group unless --jwt-trust-names. */
export const EXTERNAL_NAME_PREFIX = 'jwt:';
const RESERVED_GROUP_PREFIX = 'warren:';
const MAX_GROUPS = 100;
const CLOCK_SKEW_S = 30;

export class ExternalJwt {
  /** Tokens that passed every check below, until their exp (with the skew allowed). The key never changes in a hub's life. */
  private readonly verified = new VerifiedTokens<ExternalClaims>();

  constructor(
    readonly key: KeyObject,
    readonly alg: ExternalAlg,
    readonly policy: ExternalJwtPolicy,
    /** Epoch ms: expiry and lifetime (jose's too). */
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads and checks the key at start-up; throws WARREN_E_CONFIG with what is wrong. */
  static fromFile(file: string, policy: ExternalJwtPolicy): ExternalJwt {
    let pem: string;
    try {
      pem = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new WarrenError('WARREN_E_CONFIG', `--jwt-public-key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return ExternalJwt.fromPem(pem, policy, `--jwt-public-key ${file}`);
  }

  static fromPem(pem: string, policy: ExternalJwtPolicy, what = 'JWT public key'): ExternalJwt {
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
      return new ExternalJwt(key, 'RS256', policy);
    }
    if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return new ExternalJwt(key, 'ES256', policy);
    throw new WarrenError('WARREN_E_CONFIG', `${what}: key type ${key.asymmetricKeyType}${details.namedCurve ? ` (${details.namedCurve})` : ''} is not supported; use RSA (RS256) or EC P-256 (ES256)`);
  }

  /** Verifies a token; throws WARREN_E_UNAUTHENTICATED saying why (never quoting the token). */
  async verify(token: string): Promise<ExternalClaims> {
    const r = await this.check(token);
    if ('error' in r) throw r.error;
    return r.claims;
  }

  /**
   * For HubAuth: `verify` gives undefined for a token this key did not sign (it may be the hub's own, or
   * garbage — the hub's error then stands) and throws for a token it signed that is expired or malformed.
   */
  issuer(): ExternalIssuer {
    return {
      doors: this.policy.doors,
      verify: async (token) => {
        const r = await this.check(token);
        if ('claims' in r) return r.claims.principal;
        if (r.signedByKey) throw r.error;
        return undefined;
      },
    };
  }

  private async check(token: string): Promise<{ claims: ExternalClaims } | { error: WarrenError; signedByKey: boolean }> {
    const known = this.verified.get(token, Math.floor(this.now() / 1000));
    if (known) return { claims: known };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: [this.alg],
        clockTolerance: CLOCK_SKEW_S,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp'],
        ...(this.policy.issuer !== undefined ? { issuer: this.policy.issuer } : {}),
        ...(this.policy.audience !== undefined ? { audience: this.policy.audience } : {}),
      }));
    } catch (err) {
      // jose checks the signature before the claims: an expired or not-yet-valid token was signed by this key.
      const signedByKey = err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed;
      return { error: new WarrenError('WARREN_E_UNAUTHENTICATED', verifyFailure(err, this.alg)), signedByKey };
    }
    try {
      checkLifetime(payload, this.policy.maxTtlMs, this.now());
      const claims = claimsOf(payload, this.policy.trustNames);
      // Both checks above only get easier with time (nbf passed, less lifetime left): the result holds until exp.
      this.verified.set(token, claims, payload.exp! + CLOCK_SKEW_S);
      return { claims };
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

const rejected = (why: string) => new WarrenError('WARREN_E_UNAUTHENTICATED', `external token rejected: ${why}`);

/** jose has checked that exp (and iat, when present) are numbers and that exp is not past. */
function checkLifetime(payload: JWTPayload, maxTtlMs: number, nowMs: number): void {
  const exp = payload.exp!;
  const max = formatDuration(maxTtlMs);
  if (payload.iat !== undefined && (exp - payload.iat) * 1000 > maxTtlMs) {
    throw rejected(`it is valid for ${formatDuration(Math.round((exp - payload.iat) * 1000))} (exp − iat), longer than --jwt-max-ttl ${max}`);
  }
  // Also with iat: an iat in the future would otherwise stretch a token's life past the maximum.
  if ((exp - nowMs / 1000 - CLOCK_SKEW_S) * 1000 > maxTtlMs) {
    throw rejected(`it expires more than --jwt-max-ttl ${max} from now`);
  }
}

function claimsOf(payload: JWTPayload, trustNames: boolean): ExternalClaims {
  if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 253) throw rejected('sub must name the user');
  let groups: string[] = [];
  if (payload.groups !== undefined) {
    if (!Array.isArray(payload.groups) || payload.groups.length > MAX_GROUPS || !payload.groups.every((g) => typeof g === 'string' && g !== '' && g.length <= 253)) {
      throw rejected('groups must be an array of group names');
    }
    groups = [...new Set(payload.groups as string[])].filter((g) => !g.startsWith(RESERVED_GROUP_PREFIX));
  }
  if (payload.ctx !== undefined && (typeof payload.ctx !== 'string' || payload.ctx === '')) throw rejected('ctx must be a cluster name');
  const name = (n: string) => (trustNames ? n : EXTERNAL_NAME_PREFIX + n);
  return { principal: { user: name(payload.sub), groups: groups.map(name), via: 'jwt' }, ctx: payload.ctx };
}

function verifyFailure(err: unknown, alg: ExternalAlg): string {
  if (err instanceof joseErrors.JWTExpired) return 'external token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'exp' && err.reason === 'missing') return 'external token rejected: it has no exp claim; the hub accepts only external tokens that expire (within --jwt-max-ttl)';
    if (err.claim === 'nbf' && err.reason === 'check_failed') return 'external token rejected: it is not valid yet (nbf is in the future)';
    if (err.claim === 'iss') return 'external token rejected: its iss claim is not the issuer named by --jwt-issuer';
    if (err.claim === 'aud') return 'external token rejected: its aud claim does not name the audience given by --jwt-audience';
    return `external token rejected: ${err.claim} claim check failed (${err.reason})`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `external token is not signed with ${alg}, the algorithm of the configured key`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'external token signature does not verify with the configured key';
  return 'token is not a valid JWT';
}

/**
 * Who is calling: a hub-issued access token (Bearer, or Basic with the token as password), a trusted
 * external JWT, or a user client certificate signed by the hub CA. Agent certificates are never
 * accepted as users.
 *
 * Every caller names its door, because an external JWT is a credential only at the doors the operator
 * opened to it (--jwt-doors, default kube): whoever holds the issuer's key can mint any subject, and
 * a kube request still meets the member cluster's RBAC while a CONNECT stream meets nothing after
 * Warren's grants.
 */
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { WarrenError } from '../shared/errors.js';
import { verifiedPeer } from '../tunnel/peerCertificate.js';
import type { AccessTokens } from './accessTokens.js';
import type { Authenticator, DoorName, Principal } from '../doors/door.js';

/**
 * A verifier for tokens the hub did not issue (e.g. multikube-style JWTs); undefined: not mine. It may
 * throw a WarrenError for a token that is its own but unusable (expired): that message reaches the caller.
 */
export type ExternalVerifier = (token: string) => Promise<Principal | undefined>;

/** An external issuer and the doors where its tokens are accepted. */
export interface ExternalIssuer {
  readonly verify: ExternalVerifier;
  readonly doors: readonly DoorName[];
}

const MAX_TOKEN_LENGTH = 8192;

export class HubAuth implements Authenticator {
  constructor(
    private readonly tokens: AccessTokens,
    private readonly external?: ExternalIssuer,
  ) {}

  async fromToken(token: string, door: DoorName): Promise<Principal> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'access token is malformed');
    try {
      return await this.tokens.verify(token);
    } catch (err) {
      if (!this.external) throw err;
      const p = await this.external.verify(token).catch((e: unknown) => {
        if (e instanceof WarrenError) throw e;
        return undefined;
      });
      if (!p) throw err;
      if (!this.external.doors.includes(door)) {
        throw new WarrenError(
          'WARREN_E_UNAUTHENTICATED',
          `external JWTs are not accepted at the ${door} door (the hub accepts them at: ${this.external.doors.join(', ')}); an operator can add ${door} to the hub's --jwt-doors`,
        );
      }
      return p;
    }
  }

  /**
   * Authenticates an HTTP request from an Authorization-style header value, falling back to the TLS
   * client certificate. Throws WARREN_E_UNAUTHENTICATED when neither is present or valid.
   */
  async fromHttp(headerValue: string | undefined, socket: Socket, door: DoorName): Promise<Principal> {
    if (headerValue) return this.fromToken(tokenFromHeader(headerValue), door);
    const fromCert = principalFromCert(socket);
    if (fromCert) return fromCert;
    throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'credentials required: send "Bearer TOKEN" (or Basic with the token as password) or a client certificate');
  }
}

/** `Bearer T` → T; `Basic base64(user:T)` → T. */
export function tokenFromHeader(value: string): string {
  const m = /^(\S+)\s+(\S+)$/.exec(value.trim());
  if (!m) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'authorization header is malformed; use "Bearer TOKEN"');
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return m[2]!;
  if (scheme === 'basic') {
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'Basic credentials must be user:TOKEN');
    return decoded.slice(colon + 1);
  }
  throw new WarrenError('WARREN_E_UNAUTHENTICATED', `authorization scheme "${m[1]}" is not supported; use Bearer or Basic`);
}

/** A user certificate (OU=warren-user) that chains to the hub CA, or undefined. */
export function principalFromCert(socket: Socket): Principal | undefined {
  const id = socket instanceof tls.TLSSocket ? verifiedPeer(socket) : undefined;
  return id?.kind === 'user' ? { user: id.name, groups: id.groups, via: 'cert' } : undefined;
}

/**
 * Who is calling: a hub-issued access token (Bearer, or Basic with the token as password), a trusted
 * external JWT, or a user client certificate signed by the hub CA. Agent certificates are never
 * accepted as users.
 */
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { WarrenError } from '../errors.js';
import { USER_OU } from '../pki/pki.js';
import type { AccessTokens } from './accessTokens.js';
import type { Authenticator, Principal } from './doors/door.js';

/**
 * A verifier for tokens the hub did not issue (e.g. multikube-style JWTs); undefined: not mine. It may
 * throw a WarrenError for a token that is its own but unusable (expired): that message reaches the caller.
 */
export type ExternalVerifier = (token: string) => Promise<Principal | undefined>;

const MAX_TOKEN_LENGTH = 8192;

export class HubAuth implements Authenticator {
  private readonly external: ExternalVerifier[] = [];

  constructor(private readonly tokens: AccessTokens) {}

  addExternalVerifier(v: ExternalVerifier): void {
    this.external.push(v);
  }

  async fromToken(token: string): Promise<Principal> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'access token is malformed');
    try {
      return await this.tokens.verify(token);
    } catch (err) {
      for (const v of this.external) {
        const p = await v(token).catch((e: unknown) => {
          if (e instanceof WarrenError) throw e;
          return undefined;
        });
        if (p) return p;
      }
      throw err;
    }
  }

  /**
   * Authenticates an HTTP request from an Authorization-style header value, falling back to the TLS
   * client certificate. Throws WARREN_E_UNAUTHENTICATED when neither is present or valid.
   */
  async fromHttp(headerValue: string | undefined, socket: Socket): Promise<Principal> {
    if (headerValue) return this.fromToken(tokenFromHeader(headerValue));
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
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  const subject = cert?.subject as unknown as Record<string, string | string[]> | undefined;
  if (!subject || !asArray(subject.OU).includes(USER_OU)) return undefined;
  const user = asArray(subject.CN)[0];
  if (!user) return undefined;
  return { user, groups: asArray(subject.O), via: 'cert' };
}

function asArray(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

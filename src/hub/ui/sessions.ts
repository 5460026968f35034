/**
 * Web UI sessions. Signing in with an access token sets a session cookie (`__Host-` prefixed:
 * HttpOnly, Secure, SameSite=Strict, Path=/); the session is bound to that token and re-checks it on
 * every request, so revoking the token (or its expiry) ends the session at once. The hub keeps only the
 * cookie's SHA-256, in memory: a restarted hub forgets its sessions and users sign in again.
 *
 * CSRF: every state-changing request made with the cookie must carry the session's CSRF token in the
 * `x-csrf-token` header (the UI reads it from GET /ui/session), and an `Origin`, when the browser sends
 * one, must be the hub's own. Otherwise: 403 WARREN_E_CSRF. A request with an Authorization header is
 * judged by that header alone and the cookie is ignored.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { WarrenError } from '../../shared/errors.js';
import type { Principal } from '../../doors/door.js';
import type { HubAuth } from '../auth.js';

export const SESSION_COOKIE = '__Host-warren-session';
/** A session ends after this long even while its token stays valid. */
export const SESSION_MAX_AGE_MS = 12 * 3_600_000;
/** Beyond this many sessions the oldest is dropped (sign-ins cannot grow the hub's memory without bound). */
const MAX_SESSIONS = 10_000;

interface Session {
  readonly token: string;
  readonly csrf: string;
  readonly expiresAt: number;
}

export interface ResolvedSession {
  readonly principal: Principal;
  /** The access token the session was opened with (kubeconfig downloads embed it). */
  readonly token: string;
  readonly csrf: string;
  readonly expiresAt: number;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function digest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Constant-time string comparison (CSRF tokens). */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class UiSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly auth: Pick<HubAuth, 'fromToken'>,
    private readonly maxAgeMs = SESSION_MAX_AGE_MS,
  ) {}

  /** Signs in: checks the token like the API would, and returns the session and its Set-Cookie value. */
  async create(token: string): Promise<{ session: ResolvedSession; setCookie: string }> {
    const principal = await this.auth.fromToken(token, 'api');
    const id = randomBytes(32).toString('base64url');
    const session: Session = { token, csrf: randomBytes(24).toString('base64url'), expiresAt: Date.now() + this.maxAgeMs };
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(digest(id), session);
    const setCookie = `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${Math.floor(this.maxAgeMs / 1000)}`;
    return { session: { principal, ...session }, setCookie };
  }

  /**
   * The live session a request's cookie names, its token checked again (revoked or expired: the session
   * is dropped); undefined without one.
   */
  async resolve(req: IncomingMessage): Promise<ResolvedSession | undefined> {
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (!id) return undefined;
    const key = digest(id);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    if (s.expiresAt <= Date.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    let principal: Principal;
    try {
      principal = await this.auth.fromToken(s.token, 'api');
    } catch {
      this.sessions.delete(key);
      return undefined;
    }
    return { principal, token: s.token, csrf: s.csrf, expiresAt: s.expiresAt };
  }

  /** Ends the request's session; returns the Set-Cookie value that clears the cookie. */
  end(req: IncomingMessage): string {
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (id) this.sessions.delete(digest(id));
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
  }

  /** Throws WARREN_E_CSRF unless a state-changing request carries the session's token and comes from the hub's origin. */
  checkCsrf(req: IncomingMessage, session: ResolvedSession): void {
    checkOrigin(req);
    if (SAFE_METHODS.has(req.method ?? 'GET')) return;
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sameText(sent, session.csrf)) {
      throw new WarrenError('WARREN_E_CSRF', 'this request uses the web UI session but lacks its CSRF token (header x-csrf-token); reload the page, or call the API with "Authorization: Bearer TOKEN"');
    }
  }

  /**
   * For the API: a request with the session cookie and no Authorization header is authenticated as the
   * session's token, after the CSRF check. A cookie that names no live session changes nothing (the
   * API then answers 401).
   */
  async authorizeApi(req: IncomingMessage): Promise<void> {
    if (req.headers.authorization !== undefined) return;
    const session = await this.resolve(req);
    if (!session) return;
    this.checkCsrf(req, session);
    req.headers.authorization = `Bearer ${session.token}`;
  }
}

/** Throws WARREN_E_CSRF when the browser says the request comes from a page of another origin. */
export function checkOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  if (origin !== `https://${req.headers.host ?? ''}`) {
    throw new WarrenError('WARREN_E_CSRF', `requests with the web UI session must come from the hub's own pages, not from ${origin.slice(0, 200)}`);
  }
}

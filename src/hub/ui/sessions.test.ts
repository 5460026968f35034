import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { SqliteStore } from '../../store/sqliteStore.js';
import { AccessTokens } from '../accessTokens.js';
import { HubAuth } from '../auth.js';
import { SESSION_COOKIE, UiSessions } from './sessions.js';

const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

async function setUp() {
  const store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'warren-ui-sessions-')), 'store.db'));
  const tokens = new AccessTokens(store, keys.privateKey, keys.publicKey, 'w:test');
  const issued = await tokens.issue({ user: 'ana', groups: ['ops'], ttlMs: 3_600_000, createdBy: 'test' });
  return { store, issued, sessions: new UiSessions(new HubAuth(tokens)) };
}

/** Just what the session code reads of a request. */
function request(headers: Record<string, string>, method = 'GET'): IncomingMessage {
  return { headers: { host: 'hub:8443', ...headers }, method } as unknown as IncomingMessage;
}

function cookieOf(setCookie: string): string {
  return setCookie.split(';')[0]!;
}

test('a session cookie is HttpOnly, Secure, SameSite=Strict and names the token it was opened with', async () => {
  const { sessions, issued } = await setUp();
  const { setCookie, session } = await sessions.create(issued.token);
  assert.match(setCookie, new RegExp(`^${SESSION_COOKIE}=[\\w-]{43}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=\\d+$`));
  assert.equal(session.principal.user, 'ana');
  const resolved = await sessions.resolve(request({ cookie: `other=1; ${cookieOf(setCookie)}` }));
  assert.equal(resolved?.principal.user, 'ana');
  assert.equal(resolved.csrf, session.csrf);
  assert.equal(await sessions.resolve(request({ cookie: `${SESSION_COOKIE}=forged` })), undefined);
});

test('revoking the token ends the session; signing out ends it too', async () => {
  const { sessions, issued, store } = await setUp();
  const a = cookieOf((await sessions.create(issued.token)).setCookie);
  const b = cookieOf((await sessions.create(issued.token)).setCookie);
  assert.match(sessions.end(request({ cookie: b })), /Max-Age=0$/);
  assert.equal(await sessions.resolve(request({ cookie: b })), undefined);
  assert.ok(await sessions.resolve(request({ cookie: a })));
  await store.revokeAccessToken(issued.id, Date.now());
  assert.equal(await sessions.resolve(request({ cookie: a })), undefined);
});

test('a cookie request to the API becomes a bearer request only with the CSRF token and from the hub origin', async () => {
  const { sessions, issued } = await setUp();
  const { setCookie, session } = await sessions.create(issued.token);
  const cookie = cookieOf(setCookie);

  const get = request({ cookie });
  await sessions.authorizeApi(get);
  assert.equal(get.headers.authorization, `Bearer ${issued.token}`);

  await assert.rejects(sessions.authorizeApi(request({ cookie }, 'POST')), { code: 'WARREN_E_CSRF' });
  await assert.rejects(sessions.authorizeApi(request({ cookie, 'x-csrf-token': session.csrf.slice(1) + 'x' }, 'DELETE')), { code: 'WARREN_E_CSRF' });
  await assert.rejects(sessions.authorizeApi(request({ cookie, 'x-csrf-token': session.csrf, origin: 'https://evil.example' }, 'POST')), { code: 'WARREN_E_CSRF' });
  const post = request({ cookie, 'x-csrf-token': session.csrf, origin: 'https://hub:8443' }, 'POST');
  await sessions.authorizeApi(post);
  assert.equal(post.headers.authorization, `Bearer ${issued.token}`);

  // An Authorization header is judged alone: the cookie and CSRF rules do not apply.
  const bearer = request({ cookie, authorization: 'Bearer other' }, 'POST');
  await sessions.authorizeApi(bearer);
  assert.equal(bearer.headers.authorization, 'Bearer other');
});

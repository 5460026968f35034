import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { SignJWT } from 'jose';
import { WarrenError } from '../shared/errors.js';
import { createCa, createCsr, issueAgentCert, issueServerCert, issueUserCert, loadCa, type Ca } from '../pki/pki.js';
import { tlsPair } from '../../test/support/tlsPair.js';
import { SqliteStore } from '../store/sqliteStore.js';
import { AccessTokens } from './accessTokens.js';
import { HubAuth } from './auth.js';
import type { DoorName } from '../doors/door.js';
import { ExternalJwt, type ExternalJwtPolicy } from './externalJwt.js';

const hubKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const issuerKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const issuerPem = issuerKeys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const policy: ExternalJwtPolicy = { maxTtlMs: 3_600_000, issuer: undefined, audience: undefined, trustNames: false, doors: ['kube'] };

function setUp(doors: readonly DoorName[] | undefined) {
  const store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'warren-auth-')), 'store.db'));
  const tokens = new AccessTokens(store, hubKeys.privateKey, hubKeys.publicKey, 'w:test');
  const external = doors && ExternalJwt.fromPem(issuerPem, { ...policy, doors }).issuer();
  return { tokens, auth: new HubAuth(tokens, external) };
}

const externalToken = () =>
  new SignJWT({ sub: 'bob', groups: ['ops'] }).setProtectedHeader({ alg: 'ES256' }).setIssuedAt().setExpirationTime('5m').sign(issuerKeys.privateKey);
const ALL_DOORS: readonly DoorName[] = ['kube', 'connect', 'socks5', 'api', 'uds', 'forward'];

test('an external JWT is a credential only at the doors in --jwt-doors (default kube); the refusal names the flag', async () => {
  const { auth } = setUp(['kube']);
  const token = await externalToken();
  assert.deepEqual(await auth.fromToken(token, 'kube'), { user: 'jwt:bob', groups: ['jwt:ops'], via: 'jwt' });
  for (const door of ALL_DOORS.filter((d) => d !== 'kube')) {
    await assert.rejects(
      auth.fromToken(token, door),
      (err: unknown) =>
        err instanceof WarrenError && err.code === 'WARREN_E_UNAUTHENTICATED' && err.status === 401 && err.socks === 0x02 &&
        err.message === `external JWTs are not accepted at the ${door} door (the hub accepts them at: kube); an operator can add ${door} to the hub's --jwt-doors`,
      door,
    );
  }
});

test('--jwt-doors kube,connect opens the CONNECT door too, through fromHttp as the doors call it', async () => {
  const { auth } = setUp(['kube', 'connect']);
  const token = await externalToken();
  const socket = new net.Socket();
  assert.equal((await auth.fromHttp(`Bearer ${token}`, socket, 'connect')).user, 'jwt:bob');
  const basic = Buffer.from(`any:${token}`).toString('base64');
  assert.equal((await auth.fromHttp(`Basic ${basic}`, socket, 'connect')).user, 'jwt:bob');
  await assert.rejects(auth.fromHttp(`Bearer ${token}`, socket, 'socks5'), /not accepted at the socks5 door .*kube, connect/);
  socket.destroy();
});

test('hub-issued tokens work at every door whatever --jwt-doors says', async () => {
  const { auth, tokens } = setUp(['kube']);
  const { token, id } = await tokens.issue({ user: 'ana', groups: ['dev'], ttlMs: 60_000, createdBy: 'test' });
  for (const door of ALL_DOORS) assert.deepEqual(await auth.fromToken(token, door), { user: 'ana', groups: ['dev'], via: 'token', tokenId: id }, door);
});

test('a hub token checked once is still refused the moment it is revoked or expires, and a changed one never passes', async () => {
  const store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'warren-auth-')), 'store.db'));
  let now = Date.UTC(2026, 0, 1);
  const tokens = new AccessTokens(store, hubKeys.privateKey, hubKeys.publicKey, 'w:test', () => now);
  const refused = (pattern: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_UNAUTHENTICATED' && pattern.test(err.message);

  const revoked = await tokens.issue({ user: 'ana', groups: [], ttlMs: null, createdBy: 'test' });
  for (let i = 0; i < 3; i++) assert.equal((await tokens.verify(revoked.token)).user, 'ana');
  assert.ok(await store.revokeAccessToken(revoked.id, now));
  await assert.rejects(tokens.verify(revoked.token), refused(/^access token was revoked/));

  const expiring = await tokens.issue({ user: 'bob', groups: [], ttlMs: 60_000, createdBy: 'test' });
  assert.equal((await tokens.verify(expiring.token)).user, 'bob');
  now += 59_000;
  assert.equal((await tokens.verify(expiring.token)).user, 'bob');
  now += 1_000;
  await assert.rejects(tokens.verify(expiring.token), refused(/^access token expired/));

  const good = await tokens.issue({ user: 'cy', groups: [], ttlMs: null, createdBy: 'test' });
  assert.equal((await tokens.verify(good.token)).user, 'cy');
  const [header, payload, signature] = good.token.split('.') as [string, string, string];
  const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
  await assert.rejects(tokens.verify(`${header}.${payload}.${flipped}`), refused(/^access token is not valid/));
  const otherUser = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), jti: revoked.id })).toString('base64url');
  await assert.rejects(tokens.verify(`${header}.${otherUser}.${signature}`), refused(/^access token is not valid/));
});

test('without --jwt-public-key an external JWT is just an invalid token; a foreign one keeps the hub error', async () => {
  const token = await externalToken();
  await assert.rejects(setUp(undefined).auth.fromToken(token, 'kube'), /access token is not valid for this hub/);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const foreign = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(other);
  await assert.rejects(setUp(['kube', 'connect']).auth.fromToken(foreign, 'connect'), /access token is not valid for this hub/);
});

test('an external JWT refused for its claims says why at any door, before the door is considered', async () => {
  const { auth } = setUp(['kube']);
  const forever = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'ES256' }).sign(issuerKeys.privateKey);
  await assert.rejects(auth.fromToken(forever, 'connect'), /no exp claim/);
  await assert.rejects(auth.fromToken(forever, 'kube'), /no exp claim/);
});

test('without a header, a user certificate from the hub CA is the principal (via cert); an agent or foreign certificate is not', async () => {
  const caPair = await createCa('auth test CA');
  const ca = await loadCa(caPair);
  const serving = await issueServerCert(ca, ['127.0.0.1']);
  const leaf = async (issuer: Ca, kind: 'user' | 'agent') => {
    const { csrPem, keyPem } = await createCsr('x');
    const cert = kind === 'user' ? await issueUserCert(issuer, csrPem, 'ana', ['ops'], 1) : await issueAgentCert(issuer, csrPem, 'alpha', 1);
    return { certPem: cert.certPem, keyPem };
  };
  const { auth } = setUp(undefined);
  const asServer = async (client: { certPem: string; keyPem: string }) => (await tlsPair({ caPem: caPair.certPem, server: serving, client })).server;

  assert.deepEqual(await auth.fromHttp(undefined, await asServer(await leaf(ca, 'user')), 'connect'), { user: 'ana', groups: ['ops'], via: 'cert' });
  const other = await loadCa(await createCa('another CA'));
  for (const client of [await leaf(ca, 'agent'), await leaf(other, 'user')]) {
    await assert.rejects(auth.fromHttp(undefined, await asServer(client), 'connect'), (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_UNAUTHENTICATED');
  }
});

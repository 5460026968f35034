import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { SignJWT, base64url } from 'jose';
import { WarrenError } from '../shared/errors.js';
import { ExternalJwt, unverifiedCtx, type ExternalJwtPolicy } from './externalJwt.js';

const policy: ExternalJwtPolicy = { maxTtlMs: 24 * 3_600_000, issuer: undefined, audience: undefined, trustNames: false, doors: ['kube'] };
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;
const sign = (claims: Record<string, unknown>, key: KeyObject, alg: string, exp: number | string = '5m') =>
  new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime(exp).sign(key);

test('the key type pins the algorithm', async () => {
  assert.equal(ExternalJwt.fromPem(pem(rsa.publicKey), policy).alg, 'RS256');
  assert.equal(ExternalJwt.fromPem(pem(ec.publicKey), policy).alg, 'ES256');
  assert.throws(() => ExternalJwt.fromPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, policy), /private key/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), policy), /2048/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey), policy), /not supported/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('ed25519').publicKey), policy), /not supported/);
  assert.throws(() => ExternalJwt.fromPem('hello', policy), /not a PEM/);
});

test('claims become a principal in the jwt: name space; warren: groups from outside are dropped', async () => {
  const v = ExternalJwt.fromPem(pem(rsa.publicKey), policy);
  const c = await v.verify(await sign({ sub: 'developer', ctx: 'minikube', groups: ['dev', 'warren:admins', 'dev'] }, rsa.privateKey, 'RS256'));
  assert.deepEqual(c, { principal: { user: 'jwt:developer', groups: ['jwt:dev'], via: 'jwt' }, ctx: 'minikube' });
  await assert.rejects(v.verify(await sign({ ctx: 'x' }, rsa.privateKey, 'RS256')), /sub must name the user/);
  await assert.rejects(v.verify(await sign({ sub: 'a', groups: 'dev' }, rsa.privateKey, 'RS256')), /groups must be an array/);
});

test('signature, algorithm and expiry are enforced', async () => {
  const v = ExternalJwt.fromPem(pem(rsa.publicKey), policy);
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  await assert.rejects(v.verify(await sign({ sub: 'a' }, other, 'RS256')), /signature does not verify/);
  await assert.rejects(v.verify(await sign({ sub: 'a' }, rsa.privateKey, 'PS256')), /not signed with RS256/);
  await assert.rejects(v.verify(await sign({ sub: 'a' }, rsa.privateKey, 'RS256', Math.floor(Date.now() / 1000) - 120)), /expired/);
  const header = base64url.encode(JSON.stringify({ alg: 'none' }));
  const payload = base64url.encode(JSON.stringify({ sub: 'a', ctx: 'x' }));
  await assert.rejects(v.verify(`${header}.${payload}.`), /not signed with RS256|not a valid JWT/);
});

test('with --jwt-trust-names the names are taken as they are, but warren: groups are still dropped', async () => {
  const v = ExternalJwt.fromPem(pem(rsa.publicKey), { ...policy, trustNames: true });
  const c = await v.verify(await sign({ sub: 'developer', groups: ['dev', 'warren:admins', 'warren:metrics'] }, rsa.privateKey, 'RS256'));
  assert.deepEqual(c.principal, { user: 'developer', groups: ['dev'], via: 'jwt' });
});

test('as a HubAuth issuer: its doors; not ours → undefined, ours but expired → an error that says so', async () => {
  const issuer = ExternalJwt.fromPem(pem(ec.publicKey), { ...policy, doors: ['kube', 'connect'] }).issuer();
  assert.deepEqual(issuer.doors, ['kube', 'connect']);
  assert.equal(await issuer.verify(await sign({ sub: 'a' }, rsa.privateKey, 'RS256')), undefined);
  assert.equal(await issuer.verify('not.a.jwt'), undefined);
  assert.deepEqual(await issuer.verify(await sign({ sub: 'a' }, ec.privateKey, 'ES256')), { user: 'jwt:a', groups: [], via: 'jwt' });
  await assert.rejects(issuer.verify(await sign({ sub: 'a' }, ec.privateKey, 'ES256', Math.floor(Date.now() / 1000) - 120)), /expired/);
  await assert.rejects(issuer.verify(await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey)), /no exp claim/);
});

const now = () => Math.floor(Date.now() / 1000);
const unauthenticated = (message: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_UNAUTHENTICATED' && message.test(err.message);

test('a token without exp is refused, whatever else it carries', async () => {
  const v = ExternalJwt.fromPem(pem(ec.publicKey), policy);
  const forever = await new SignJWT({ sub: 'a', ctx: 'prod' }).setProtectedHeader({ alg: 'ES256' }).setIssuedAt().sign(ec.privateKey);
  await assert.rejects(v.verify(forever), unauthenticated(/^external token rejected: it has no exp claim; .*--jwt-max-ttl/));
});

test('--jwt-max-ttl bounds exp − iat, and exp − now without iat (or with an iat in the future)', async () => {
  const v = ExternalJwt.fromPem(pem(ec.publicKey), policy);
  const es = (build: (j: SignJWT) => SignJWT) => build(new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256' })).sign(ec.privateKey);
  const day = 86_400;
  assert.equal((await v.verify(await es((j) => j.setIssuedAt().setExpirationTime(now() + day)))).principal.user, 'jwt:a');
  assert.equal((await v.verify(await es((j) => j.setExpirationTime(now() + day)))).principal.user, 'jwt:a');
  // Issued yesterday for 30 days: only six hours are left, but it was minted to live far too long.
  await assert.rejects(
    v.verify(await es((j) => j.setIssuedAt(now() - day).setExpirationTime(now() - day + 30 * day))),
    unauthenticated(/valid for 30d \(exp − iat\), longer than --jwt-max-ttl 1d/),
  );
  await assert.rejects(v.verify(await es((j) => j.setExpirationTime(now() + 2 * day))), unauthenticated(/expires more than --jwt-max-ttl 1d from now/));
  await assert.rejects(v.verify(await es((j) => j.setIssuedAt(now() + 29 * day).setExpirationTime(now() + 30 * day))), unauthenticated(/expires more than --jwt-max-ttl 1d from now/));
  const short = ExternalJwt.fromPem(pem(ec.publicKey), { ...policy, maxTtlMs: 600_000 });
  await assert.rejects(short.verify(await es((j) => j.setIssuedAt().setExpirationTime('1h'))), unauthenticated(/valid for 1h .*--jwt-max-ttl 10m/));
});

test('nbf in the future is refused until it has come (30 s of skew allowed)', async () => {
  const v = ExternalJwt.fromPem(pem(ec.publicKey), policy);
  const later = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256' }).setIssuedAt().setNotBefore(now() + 600).setExpirationTime('1h').sign(ec.privateKey);
  await assert.rejects(v.verify(later), unauthenticated(/not valid yet \(nbf is in the future\)/));
  const skewed = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'ES256' }).setIssuedAt().setNotBefore(now() + 10).setExpirationTime('1h').sign(ec.privateKey);
  assert.equal((await v.verify(skewed)).principal.user, 'jwt:a');
});

test('--jwt-issuer and --jwt-audience: iss and aud must match when set, and be present', async () => {
  const v = ExternalJwt.fromPem(pem(ec.publicKey), { ...policy, issuer: 'https://sso.example.com', audience: 'warren' });
  const es = (claims: Record<string, unknown>) => new SignJWT({ sub: 'a', ...claims }).setProtectedHeader({ alg: 'ES256' }).setIssuedAt().setExpirationTime('1h').sign(ec.privateKey);
  assert.equal((await v.verify(await es({ iss: 'https://sso.example.com', aud: ['other', 'warren'] }))).principal.user, 'jwt:a');
  await assert.rejects(v.verify(await es({ iss: 'https://evil.example.com', aud: 'warren' })), unauthenticated(/iss claim is not the issuer named by --jwt-issuer/));
  await assert.rejects(v.verify(await es({ aud: 'warren' })), unauthenticated(/iss/));
  await assert.rejects(v.verify(await es({ iss: 'https://sso.example.com', aud: 'other' })), unauthenticated(/aud claim does not name the audience given by --jwt-audience/));
  await assert.rejects(v.verify(await es({ iss: 'https://sso.example.com' })), unauthenticated(/aud/));
  // Without the flags neither claim is looked at.
  assert.equal((await ExternalJwt.fromPem(pem(ec.publicKey), policy).verify(await es({ iss: 'anyone', aud: 'anything' }))).principal.user, 'jwt:a');
});

test('the ctx claim can be read before verification, for routing only', async () => {
  assert.equal(unverifiedCtx(await sign({ sub: 'a', ctx: 'alpha' }, rsa.privateKey, 'RS256')), 'alpha');
  assert.equal(unverifiedCtx(await sign({ sub: 'a' }, rsa.privateKey, 'RS256')), undefined);
  assert.equal(unverifiedCtx('garbage'), undefined);
});

test('an accepted token is accepted again without a new check only until it expires (30 s of skew), and only as itself', async () => {
  let now = Date.now();
  const v = new ExternalJwt(ec.publicKey, 'ES256', policy, () => now);
  const exp = Math.floor(now / 1000) + 60;
  const token = await sign({ sub: 'a' }, ec.privateKey, 'ES256', exp);
  assert.equal((await v.verify(token)).principal.user, 'jwt:a');
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const other = base64url.encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(base64url.decode(payload))), sub: 'b' }));
  await assert.rejects(v.verify(`${header}.${other}.${signature}`), /signature/);
  now += 89_000;
  assert.equal((await v.verify(token)).principal.user, 'jwt:a', 'within exp + 30 s of skew');
  now += 1_000;
  await assert.rejects(v.verify(token), (err: unknown) => err instanceof WarrenError && /expired/.test(err.message));
});

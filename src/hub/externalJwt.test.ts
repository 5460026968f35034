import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { SignJWT, base64url } from 'jose';
import { ExternalJwt, unverifiedCtx } from './externalJwt.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;
const sign = (claims: Record<string, unknown>, key: KeyObject, alg: string, exp: number | string = '5m') =>
  new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime(exp).sign(key);

test('the key type pins the algorithm', async () => {
  assert.equal(ExternalJwt.fromPem(pem(rsa.publicKey)).alg, 'RS256');
  assert.equal(ExternalJwt.fromPem(pem(ec.publicKey)).alg, 'ES256');
  assert.throws(() => ExternalJwt.fromPem(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), /private key/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)), /2048/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey)), /not supported/);
  assert.throws(() => ExternalJwt.fromPem(pem(generateKeyPairSync('ed25519').publicKey)), /not supported/);
  assert.throws(() => ExternalJwt.fromPem('hello'), /not a PEM/);
});

test('claims become a principal; warren: groups from outside are dropped', async () => {
  const v = ExternalJwt.fromPem(pem(rsa.publicKey));
  const c = await v.verify(await sign({ sub: 'developer', ctx: 'minikube', groups: ['dev', 'warren:admins', 'dev'] }, rsa.privateKey, 'RS256'));
  assert.deepEqual(c, { principal: { user: 'developer', groups: ['dev'], via: 'jwt' }, ctx: 'minikube' });
  await assert.rejects(v.verify(await sign({ ctx: 'x' }, rsa.privateKey, 'RS256')), /sub must name the user/);
  await assert.rejects(v.verify(await sign({ sub: 'a', groups: 'dev' }, rsa.privateKey, 'RS256')), /groups must be an array/);
});

test('signature, algorithm and expiry are enforced', async () => {
  const v = ExternalJwt.fromPem(pem(rsa.publicKey));
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  await assert.rejects(v.verify(await sign({ sub: 'a' }, other, 'RS256')), /signature does not verify/);
  await assert.rejects(v.verify(await sign({ sub: 'a' }, rsa.privateKey, 'PS256')), /not signed with RS256/);
  await assert.rejects(v.verify(await sign({ sub: 'a' }, rsa.privateKey, 'RS256', Math.floor(Date.now() / 1000) - 120)), /expired/);
  const header = base64url.encode(JSON.stringify({ alg: 'none' }));
  const payload = base64url.encode(JSON.stringify({ sub: 'a', ctx: 'x' }));
  await assert.rejects(v.verify(`${header}.${payload}.`), /not signed with RS256|not a valid JWT/);
});

test('as a HubAuth verifier: not ours → undefined, ours but expired → an error that says so', async () => {
  const verifier = ExternalJwt.fromPem(pem(ec.publicKey)).verifier();
  assert.equal(await verifier(await sign({ sub: 'a' }, rsa.privateKey, 'RS256')), undefined);
  assert.equal(await verifier('not.a.jwt'), undefined);
  assert.deepEqual(await verifier(await sign({ sub: 'a' }, ec.privateKey, 'ES256')), { user: 'a', groups: [], via: 'jwt' });
  await assert.rejects(verifier(await sign({ sub: 'a' }, ec.privateKey, 'ES256', Math.floor(Date.now() / 1000) - 120)), /expired/);
});

test('the ctx claim can be read before verification, for routing only', async () => {
  assert.equal(unverifiedCtx(await sign({ sub: 'a', ctx: 'alpha' }, rsa.privateKey, 'RS256')), 'alpha');
  assert.equal(unverifiedCtx(await sign({ sub: 'a' }, rsa.privateKey, 'RS256')), undefined);
  assert.equal(unverifiedCtx('garbage'), undefined);
});

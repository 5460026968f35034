// Fuzzing, in-process tier: every parser that input from the network reaches before a door has decided
// anything, fed with fast-check values and with valid inputs mutated byte by byte (test/support/fuzz.ts).
// Properties: nothing throws that is not a WarrenError with a registered code, nothing returns a
// result the grammar does not allow, and what parses re-formats to the same meaning. The SOCKS5 codec
// has its own properties beside it (src/doors/socks5Codec.test.ts); the doors themselves, over real
// sockets, are in doors.test.ts.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { ErrorCodes, WarrenError } from '../../src/shared/errors.js';
import { formatHostPort, parseHostPort } from '../../src/shared/hostPort.js';
import { formatJoinToken, parseJoinToken } from '../../src/shared/joinToken.js';
import { formatEntry, parseAllowFrom, parseEntry } from '../../src/shared/forwardSpec.js';
import { hostMatches, matchesGlob, parsePorts } from '../../src/shared/patterns.js';
import { listView, resolveTarget, type RoutableAgent } from '../../src/hub/router.js';
import { tokenFromHeader } from '../../src/hub/auth.js';
import { ExternalJwt, unverifiedCtx } from '../../src/hub/externalJwt.js';
import { kubeRequestInfo } from '../../src/kube/requestInfo.js';
import { parseDuration } from '../../src/shared/duration.js';
import { CaseTally, mutatedText, runs } from '../support/fuzz.js';

const tally = new CaseTally();
after(() => console.log(`fuzz parsers: ${tally.summary()}`));

/** Fails unless `err` is a WarrenError with a registered code (what every door turns into a wire answer). */
function assertCleanError(err: unknown, allowed?: readonly string[]): void {
  assert.ok(err instanceof WarrenError, `not a WarrenError: ${String(err)}`);
  assert.ok(err.code in ErrorCodes);
  assert.notEqual(err.code, 'WARREN_E_INTERNAL');
  if (allowed) assert.ok(allowed.includes(err.code), `unexpected code ${err.code}`);
  assert.ok(!/\n\s+at /.test(err.message), 'a stack trace in the message');
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const hostName = fc.oneof(fc.domain(), label, fc.tuple(label, label).map(([a, b]) => `${a}.${b}.warren`), label.map((a) => `${a}.warren`));
const validTarget = fc.tuple(fc.oneof(hostName, fc.ipV4(), fc.ipV6().map((h) => `[${h}]`)), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);
/** Strings of the characters that matter to the grammars, and anything at all. */
const grammarText = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'z', '0', '9', '.', ':', '[', ']', '%', '/', '-', '_', '*', '?', ',', ' ', '\n', '\0', '@', 'é'), maxLength: 80 }),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
);

describe('target grammar (HOST:PORT) and routing', () => {
  const agents: RoutableAgent[] = [
    { name: 'alpha', routes: ['10.20.0.0/16', '.corp.internal'], streamsOpen: 0 },
    { name: 'beta', routes: ['10.20.0.0/16', 'fd00::/8'], streamsOpen: 3 },
  ];
  const view = listView(agents, (n) => n === 'alpha' || n === 'beta' || n === 'gone');

  test('property: parseHostPort never throws; what it accepts formats back to itself and routes to a connected agent or a clean refusal', () => {
    fc.assert(
      fc.property(fc.oneof(validTarget, mutatedText(validTarget), grammarText), tally.count('target', (text: string) => {
        const hp = parseHostPort(text);
        if (!hp) return;
        assert.ok(Number.isInteger(hp.port) && hp.port >= 1 && hp.port <= 65535);
        assert.deepEqual(parseHostPort(formatHostPort(hp)), hp);
        try {
          const r = resolveTarget(hp.host, view);
          assert.ok(r.agents.length > 0 && r.agents.every((a) => a === 'alpha' || a === 'beta'), `routed to ${r.agents.join(',')}`);
        } catch (err) {
          assertCleanError(err, ['WARREN_E_UNKNOWN_TARGET', 'WARREN_E_AGENT_OFFLINE']);
        }
      })),
      runs(30_000),
    );
  });

  test('property: globs, CIDRs and port lists never throw, whatever the pattern and the host', () => {
    fc.assert(
      fc.property(grammarText, fc.oneof(hostName, grammarText), tally.count('patterns', (pattern: string, host: string) => {
        assert.equal(typeof matchesGlob(pattern, host), 'boolean');
        assert.equal(typeof hostMatches(pattern, host), 'boolean');
        const ports = parsePorts(pattern);
        if (ports) for (const [lo, hi] of ports) assert.ok(lo >= 1 && lo <= hi && hi <= 65535);
      })),
      runs(15_000),
    );
  });
});

describe('join tokens, forward entries, durations', () => {
  const validJoin = fc
    .record({
      hubUrl: fc.webUrl({ validSchemes: ['https'] }),
      caPin: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `sha256:${Buffer.from(b).toString('hex')}`),
      id: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex')),
      secret: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64url')),
    })
    .map((t) => formatJoinToken(t));

  test('property: parseJoinToken never throws and accepts only the token shape (https hub, pin, id, secret)', () => {
    fc.assert(
      fc.property(fc.oneof(validJoin, mutatedText(validJoin), grammarText), tally.count('join token', (text: string) => {
        const t = parseJoinToken(text);
        if (!t) return;
        assert.match(t.caPin, /^sha256:[0-9a-f]{64}$/);
        assert.match(t.id, /^[0-9a-f]{16}$/);
        assert.match(t.secret, /^[A-Za-z0-9_-]{43}$/);
        assert.equal(new URL(t.hubUrl).protocol, 'https:');
      })),
      runs(10_000),
    );
  });

  const validEntry = fc.oneof(
    fc.integer({ min: 0, max: 65535 }).map((p) => `hub:${p}`),
    fc.tuple(label, fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([a, ip, p]) => `${a}:${ip}:${p}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65535 })).map(([ip, p]) => `hub:[${ip}]:${p}`),
    fc.tuple(fc.ipV6(), label, fc.integer({ min: 1, max: 65535 })).map(([ip, zone, p]) => `hub:[${ip}%${zone}]:${p}`),
  );

  test('property: forward entries and allow-from lists parse or give an error message, never throw', () => {
    fc.assert(
      fc.property(fc.oneof(validEntry, mutatedText(validEntry), grammarText), fc.array(fc.oneof(grammarText, fc.ipV4(), fc.ipV6()), { maxLength: 4 }), tally.count('forward spec', (text: string, allow: string[]) => {
        const e = parseEntry(text);
        if (!('error' in e)) assert.deepEqual(parseEntry(formatEntry(e)), e);
        else assert.ok(e.error.length > 0);
        const a = parseAllowFrom(allow);
        if ('error' in a) assert.ok(a.error.length > 0);
        const d = parseDuration(text);
        assert.ok(d === undefined || (Number.isFinite(d) && d >= 0), `duration ${d}`);
      })),
      runs(10_000),
    );
  });
});

describe('credentials: headers, external JWTs, kube request paths', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwt = ExternalJwt.fromPem(rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string, {
    maxTtlMs: 3_600_000, issuer: undefined, audience: undefined, trustNames: false, doors: ['kube'],
  });
  const json = fc.jsonValue({ maxDepth: 2 });
  /** Claims of every shape: the ones the hub reads with values of any JSON type. */
  const claims = fc.record(
    { sub: fc.oneof(fc.string({ maxLength: 300 }), json), groups: fc.oneof(fc.array(fc.string(), { maxLength: 5 }), json), ctx: fc.oneof(label, json), exp: fc.oneof(fc.constant('10m'), fc.constant('2h'), fc.integer()), iat: fc.oneof(fc.integer(), fc.constant(undefined)) },
    { requiredKeys: [] },
  );
  const tokens: string[] = [];

  test('property: validly signed tokens with claims of any shape give a jwt: principal or WARREN_E_UNAUTHENTICATED', async () => {
    await fc.assert(
      fc.asyncProperty(claims, tally.count('jwt claims', async (c: { sub?: unknown; groups?: unknown; ctx?: unknown; exp?: string | number; iat?: number }) => {
        const { exp, iat, ...rest } = c;
        let s = new SignJWT(rest as Record<string, unknown>).setProtectedHeader({ alg: 'RS256' });
        if (exp !== undefined) s = s.setExpirationTime(exp);
        if (iat !== undefined) s = s.setIssuedAt(iat);
        const token = await s.sign(rsa.privateKey);
        if (tokens.length < 50) tokens.push(token);
        try {
          const v = await jwt.verify(token);
          assert.equal(v.principal.via, 'jwt');
          assert.ok(v.principal.user.startsWith('jwt:') && v.principal.user.length > 4);
          assert.ok(v.principal.groups.every((g) => g.startsWith('jwt:') && !g.startsWith('jwt:warren:')));
          assert.ok(v.ctx === undefined || (typeof v.ctx === 'string' && v.ctx !== ''));
        } catch (err) {
          assertCleanError(err, ['WARREN_E_UNAUTHENTICATED']);
        }
      })),
      runs(1_500),
    );
  });

  test('property: mutated tokens are refused with WARREN_E_UNAUTHENTICATED, or verify to the very claims that were signed', async () => {
    const valid = await new SignJWT({ sub: 'ana', groups: ['dev'], ctx: 'prod' }).setProtectedHeader({ alg: 'RS256' }).setIssuedAt().setExpirationTime('10m').sign(rsa.privateKey);
    const sources = [valid, ...tokens];
    const source = fc.nat(sources.length - 1).map((i) => sources[i]!);
    await fc.assert(
      fc.asyncProperty(fc.oneof(source.chain((s) => mutatedText(fc.constant(s)).map((m) => [s, m] as const)), grammarText.map((g) => [undefined, g] as const)), tally.count('jwt mutated', async ([from, token]: readonly [string | undefined, string]) => {
        // What routes a multikube request before verification must not throw either.
        const ctx = unverifiedCtx(token);
        assert.ok(ctx === undefined || typeof ctx === 'string');
        let v;
        try {
          v = await jwt.verify(token);
        } catch (err) {
          return assertCleanError(err, ['WARREN_E_UNAUTHENTICATED']);
        }
        // base64url has spare bits in its last character: such a "mutation" is the same token.
        assert.ok(from !== undefined, `an arbitrary string verified: ${token}`);
        assert.deepEqual(v, await jwt.verify(from), `a changed token verified to other claims: ${token}`);
      })),
      runs(6_000),
    );
  });

  test('property: Authorization headers of any shape give a token string or a clean refusal', () => {
    const header = fc.oneof(
      fc.string().map((t) => `Bearer ${t}`),
      fc.tuple(fc.string(), fc.string()).map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`),
      mutatedText(fc.constantFrom('Bearer abc.def.ghi', 'Basic dXNlcjp0b2tlbg==', 'bearer  x')),
      grammarText,
    );
    fc.assert(
      fc.property(header, tally.count('auth header', (h: string) => {
        try {
          assert.equal(typeof tokenFromHeader(h), 'string');
        } catch (err) {
          assertCleanError(err, ['WARREN_E_UNAUTHENTICATED']);
        }
      })),
      runs(10_000),
    );
  });

  test('property: Kubernetes request paths of any shape give request attributes, never throw', () => {
    const segment = fc.oneof(label, fc.constantFrom('api', 'apis', 'v1', 'namespaces', 'pods', 'watch', 'exec', '..', '.', '', '%2F', '%', '%zz', '%2e%2e'), fc.string({ maxLength: 10 }));
    const path = fc.oneof(fc.array(segment, { maxLength: 9 }).map((s) => `/${s.join('/')}`), grammarText);
    fc.assert(
      fc.property(fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH', 'PUT', 'get', 'BREW'), path, fc.boolean(), tally.count('kube path', (method: string, p: string, upgrade: boolean) => {
        const info = kubeRequestInfo(method, p, new URLSearchParams(p.split('?')[1] ?? ''), { upgrade });
        assert.equal(typeof info.verb, 'string');
        assert.equal(typeof info.resourceRequest, 'boolean');
      })),
      runs(15_000),
    );
  });
});

// Fuzzing over real sockets: a real hub in this process (SOCKS5 on port 0, the HTTPS port), a real agent
// with a counting upstream, and raw bytes — valid requests mutated byte by byte, and junk — sent to
// every door a client reaches: SOCKS5 greeting/auth/request, HTTP CONNECT, Upgrade, the admin API's
// bodies (every route that takes one, from the hub's own OpenAPI document), the join and CSR exchange,
// access tokens, and the Kubernetes router's paths against two clusters.
//
// Properties, per case: the hub answers within a deadline and closes (no hang); the answer is
// wire-correct for its protocol (SOCKS5 messages in order and nothing else; an HTTP response head);
// no 500 and no WARREN_E_INTERNAL; and nothing is opened that no grant allows: the fuzzing users hold
// no grant, and the upstream never sees a connection; a kube request reaches only the cluster the path
// names, never the other one. The process is the hub, so a crash fails the file.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, WarrenError } from '../../src/shared/errors.js';
import { createCsr } from '../../src/pki/pki.js';
import { encodeGreeting, encodeRequest, encodeUserPass, parseMethodSelection, parseReply, parseUserPassStatus } from '../../src/doors/socks5Codec.js';
import { inProcessHub } from '../support/inProcess.js';
import { startFakeApiserver, type FakeApiserver } from '../support/kube/apiserver.js';
import { withDeadline } from '../support/proc.js';
import { tempDir } from '../support/warren.js';
import { CaseTally, mutated, mutatedText, runs } from '../support/fuzz.js';

const tally = new CaseTally();
after(() => console.log(`fuzz doors: ${tally.summary()}`));

/** Per case: the hub has answered and closed by then, or the case is a hang. */
const CASE_DEADLINE_MS = 10_000;
const HOST = '127.0.0.1';

/** A TCP server that counts the connections it accepts (and closes them). */
async function countingUpstream(): Promise<{ port: number; accepted: () => number }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  after(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, accepted: () => n };
}

/** Sends `bytes`, ends the write side, and collects everything until the peer closes. */
function exchange(connect: () => net.Socket | tls.TLSSocket, bytes: Buffer): Promise<Buffer> {
  const socket = connect();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve) => {
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset is a close too: what counts is what arrived before it.
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
  socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => socket.end(bytes));
  return withDeadline(done, CASE_DEADLINE_MS, `the hub to answer and close (sent ${JSON.stringify(bytes.toString('latin1').slice(0, 200))})`).finally(() => socket.destroy());
}

/** The SOCKS5 answers a hub may give, in order: method selection, then auth status, then one reply; nothing after. */
function assertSocksAnswer(answer: Buffer): void {
  let rest: Uint8Array = answer;
  if (rest.length === 0) return;
  const sel = parseMethodSelection(rest);
  assert.equal(sel.kind, 'ok', `not a method selection: ${answer.toString('hex')}`);
  if (sel.kind !== 'ok') return;
  assert.ok(sel.value.method === 0x02 || sel.value.method === 0xff, `method ${sel.value.method}: the hub offers only username/password`);
  rest = rest.subarray(sel.consumed);
  if (sel.value.method === 0xff || rest.length === 0) return assert.equal(rest.length, 0, `bytes after "no acceptable method": ${answer.toString('hex')}`);
  const st = parseUserPassStatus(rest);
  assert.equal(st.kind, 'ok', `not an auth status: ${answer.toString('hex')}`);
  if (st.kind !== 'ok') return;
  rest = rest.subarray(st.consumed);
  if (!st.value.ok || rest.length === 0) return assert.equal(rest.length, 0, `bytes after a failed auth: ${answer.toString('hex')}`);
  const reply = parseReply(rest);
  assert.equal(reply.kind, 'ok', `not a SOCKS5 reply: ${answer.toString('hex')}`);
  if (reply.kind !== 'ok') return;
  assert.notEqual(reply.value.reply, 0x00, 'a stream was granted to a user without a grant');
  assert.equal(rest.length, reply.consumed, `bytes after the reply: ${answer.toString('hex')}`);
}

/**
 * An HTTP answer: a response head, never 101 or a 2xx that carries anything (nothing is granted), never a
 * 500 or an internal error. The one 200 allowed is `whoami` (`ownIdentity`: the caller's own principal,
 * which needs no grant): a mutated Upgrade request to /api/v1/whoami can become a plain GET of it.
 */
function assertHttpRefusal(answer: Buffer, ownIdentity: string): number | undefined {
  if (answer.length === 0) return undefined;
  const text = answer.toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/.exec(text);
  assert.ok(m, `not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const status = Number(m[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  const whoami = status === 200 && body.trim() === ownIdentity;
  assert.ok(whoami || (status >= 400 && status !== 500), `status ${status}: ${text.slice(0, 300)}`);
  if (/content-type: application\/json/i.test(text) && body.trim()) {
    const parsed = JSON.parse(body) as { code?: string; kind?: string };
    if (parsed.code !== undefined && typeof parsed.code === 'string') {
      assert.ok(parsed.code in ErrorCodes, `unregistered code ${parsed.code}`);
      assert.notEqual(parsed.code, 'WARREN_E_INTERNAL');
    }
  }
  return status;
}

/** Runs `cases` with at most `width` at once (a fuzz run is many short connections, not a flood). */
async function pooled<T>(cases: readonly T[], width: number, run: (c: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < cases.length) await run(cases[next++]!);
  }));
}

/** `n` values of `arb`, replayable from the run's seed (async properties run one case at a time; these run several). */
function sample<T>(arb: fc.Arbitrary<T>, n: number): T[] {
  const p = runs(n);
  return fc.sample(arb, { numRuns: p.numRuns!, ...(p.seed === undefined ? {} : { seed: p.seed }) });
}

// Each group is one test with subtests: the in-process hub lives as long as the test that started it.
test('doors: SOCKS5, CONNECT and Upgrade, as raw bytes from users without a grant', { timeout: 900_000 }, async (t) => {
  const lab = await inProcessHub({ socksListen: `${HOST}:0` });
  const upstream = await countingUpstream();
  await lab.agent('site', { allow: '*' });
  const eve = (await lab.token('eve')).token;
  const ca = fs.readFileSync(lab.hub.caPath, 'utf8');

  const tlsConnect = () => tls.connect({ host: HOST, port: lab.hub.address.port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });

  await t.test('SOCKS5: mutated greeting + credentials + request + payload, and junk', { timeout: 600_000 }, async () => {
    const target = () => `site:${upstream.port}`;
    const valid = fc.record({ user: fc.constantFrom('eve', 'x', ''), withToken: fc.boolean(), host: fc.constantFrom(target(), `127.0.0.1:${upstream.port}`, `[::1]:${upstream.port}`, `x.site.warren:${upstream.port}`) }).map(({ user, withToken, host }) => {
      const [h, p] = [host.slice(0, host.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(host.slice(host.lastIndexOf(':') + 1))];
      return Buffer.concat([encodeGreeting([0x00, 0x02]), encodeUserPass(user, withToken ? eve : 'not-a-token'), encodeRequest({ command: 'connect', host: h, port: p }), Buffer.from('GET / HTTP/1.0\r\n\r\n')]);
    });
    const cases = sample(fc.oneof({ weight: 4, arbitrary: mutated(valid) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)) }), 3_000);
    const port = lab.hub.socksAddress!.port;
    await pooled(cases, 6, tally.count('socks5', async (bytes: Buffer) => assertSocksAnswer(await exchange(() => net.connect(port, HOST), bytes))));
  });

  await t.test('HTTP CONNECT and Upgrade: mutated requests and junk on the HTTPS port', { timeout: 600_000 }, async () => {
    const connectReq = fc.record({ target: fc.constantFrom(`site:${upstream.port}`, `127.0.0.1:${upstream.port}`, `[::1]:${upstream.port}`, 'site:0'), auth: fc.constantFrom(`Bearer ${eve}`, `Basic ${Buffer.from(`x:${eve}`).toString('base64')}`, 'Bearer x') })
      .map(({ target, auth }) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${auth}\r\n\r\nSSH-2.0-x\r\n`);
    const upgradeReq = fc.record({ path: fc.constantFrom('/k8s/clusters/site/api/v1/namespaces/default/pods/p/exec?command=sh&stdout=true', '/k8s/clusters/site/api/v1/namespaces/default/pods/p/portforward', '/api/v1/whoami', '/'), proto: fc.constantFrom('websocket', 'SPDY/3.1') })
      .map(({ path: p, proto }) => `GET ${p} HTTP/1.1\r\nHost: hub\r\nConnection: Upgrade\r\nUpgrade: ${proto}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${eve}\r\n\r\n`);
    const req = fc.oneof({ weight: 3, arbitrary: mutatedText(connectReq) }, { weight: 3, arbitrary: mutatedText(upgradeReq) }, { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 400 }) });
    const cases = sample(req, 1_000);
    const whoami = JSON.stringify((await lab.request('GET', '/api/v1/whoami', { token: eve })).body);
    await pooled(cases, 4, tally.count('connect+upgrade', async (text: string) => void assertHttpRefusal(await exchange(tlsConnect, Buffer.from(text, 'latin1')), whoami)));
  });
  assert.equal(upstream.accepted(), 0, 'the upstream was reached by a user without a grant');

  await t.test('access tokens: mutated hub tokens give the same principal or WARREN_E_UNAUTHENTICATED', { timeout: 600_000 }, async () => {
    const bob = await lab.token('bob', ['dev']);
    const original = await lab.hub.auth.fromToken(bob.token, 'connect');
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutatedText(fc.constant(bob.token)), fc.string({ maxLength: 400 })), tally.count('access token', async (token: string) => {
        try {
          assert.deepEqual(await lab.hub.auth.fromToken(token, 'connect'), original, `a changed token verified: ${token}`);
        } catch (err) {
          assert.ok(err instanceof WarrenError && err.code === 'WARREN_E_UNAUTHENTICATED', String(err));
        }
      })),
      runs(4_000),
    );
  });
});

test('admin API bodies and the join/CSR exchange', { timeout: 900_000 }, async (t) => {
  const lab = await inProcessHub();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: fs.readFileSync(lab.hub.caPath, 'utf8') });
  after(() => agent.destroy());

  function post(method: string, urlPath: string, body: string, token?: string): Promise<{ status: number; text: string }> {
    return withDeadline(new Promise((resolve, reject) => {
      const req = https.request(`${lab.hub.url}${urlPath}`, { method, agent, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }), CASE_DEADLINE_MS, `${method} ${urlPath}`);
  }

  function assertApiAnswer(r: { status: number; text: string }, what: string): void {
    assert.ok(r.status < 500, `${what}: ${r.status} ${r.text}`);
    if (r.status >= 400) {
      const body = JSON.parse(r.text) as { code: string };
      assert.ok(body.code in ErrorCodes, `${what}: unregistered code ${body.code}`);
    }
  }

  await t.test('every route with a body: random JSON and mutated well-shaped bodies → 2xx or 4xx with a registered code, never 5xx', { timeout: 600_000 }, async () => {
    const doc = JSON.parse((await post('GET', '/api/v1/openapi.json', '')).text) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown>; $ref?: string } }> } }>>; components?: { schemas?: Record<string, { properties?: Record<string, unknown> }> } };
    const routes: Array<{ method: string; path: string; fields: string[] }> = [];
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const schema = op.requestBody?.content['application/json']?.schema;
        if (!schema) continue;
        const resolved = schema.$ref ? doc.components?.schemas?.[schema.$ref.split('/').pop()!] : schema;
        routes.push({ method: method.toUpperCase(), path: p.replace(/\{[^}]+\}/g, 'x1'), fields: Object.keys(resolved?.properties ?? {}) });
      }
    }
    assert.ok(routes.length >= 5, `routes with a body: ${routes.map((r) => r.path).join(', ')}`);
    const value = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('hub:0', 'hub:[fe80::1%eth0]:80', 'site:22', '10.0.0.0/8', '1h', '-1s', '*', 'a'.repeat(300)), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }));
    const body = (fields: string[]) => fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fields.length ? mutatedText(fc.dictionary(fc.constantFrom(...fields), value).map((o) => JSON.stringify(o))) : fc.constant('{}'),
      fields.length ? fc.dictionary(fc.constantFrom(...fields), value).map((o) => JSON.stringify(o)) : fc.constant('[]'),
    );
    const cases = sample(fc.nat(routes.length - 1).chain((i) => body(routes[i]!.fields).map((b) => ({ route: routes[i]!, body: b }))), 3_000);
    await pooled(cases, 4, tally.count('api body', async ({ route: r, body: b }: { route: (typeof routes)[number]; body: string }) => {
      assertApiAnswer(await post(r.method, r.path, b, lab.adminToken), `${r.method} ${r.path} ${b.slice(0, 200)}`);
    }));
  });

  await t.test('join: a valid token with mutated CSRs, names and labels → 201 for a well-formed CSR, else a 4xx with its code', { timeout: 600_000 }, async () => {
    const { token } = await lab.hub.enrollment.createJoinToken({ ttlMs: 600_000, uses: 100_000, labels: {}, authority: { namePattern: 'fz-*', clusters: [], routes: [] }, createdBy: 'test' });
    const csrs = await Promise.all(['fz-a', 'fz-b', 'other'].map(async (n) => (await createCsr(n)).csrPem));
    const joinBody = fc.record({ token: fc.oneof(fc.constant(token), mutatedText(fc.constant(token))), name: fc.constantFrom('fz-a', 'fz-b', 'other', 'FZ-A', 'fz-a/../b'), csr: fc.oneof(fc.constantFrom(...csrs), mutatedText(fc.constantFrom(...csrs))), labels: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 2 }) });
    const cases = sample(fc.oneof({ weight: 5, arbitrary: joinBody.map((b) => JSON.stringify(b)) }, { weight: 1, arbitrary: mutatedText(joinBody.map((b) => JSON.stringify(b))) }), 1_000);
    await pooled(cases, 4, tally.count('join+csr', async (b: string) => assertApiAnswer(await post('POST', '/api/v1/join', b), `join ${b.slice(0, 300)}`)));
  });
});

test('kube router paths: a request reaches only the cluster its path names', { timeout: 900_000 }, async (t) => {
  const lab = await inProcessHub();
  const apis: Record<string, FakeApiserver> = {};
  const dir = tempDir('fuzz-kube');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const name of ['a', 'b']) {
    const api = (apis[name] = await startFakeApiserver());
    after(() => api.close());
    const file = path.join(dir, `${name}.kubeconfig`);
    fs.writeFileSync(file, api.kubeconfig('agent'), { mode: 0o600 });
    await lab.agent(name, { kube: file });
  }
  const onlyA = (await lab.token('only-a')).token;
  const both = (await lab.token('both')).token;
  await lab.grant({ subjectKind: 'user', subject: 'only-a', cluster: 'a' });
  await lab.grant({ subjectKind: 'user', subject: 'both', cluster: '*' });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: fs.readFileSync(lab.hub.caPath, 'utf8') });
  after(() => agent.destroy());

  /** Sends `rawPath` as it is (no normalisation: Node's client sends the path it is given). */
  function get(rawPath: string, token: string): Promise<number> {
    return withDeadline(new Promise<number>((resolve, reject) => {
      const req = https.request({ host: HOST, port: lab.hub.address.port, servername: 'localhost', path: rawPath, method: 'GET', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }), CASE_DEADLINE_MS, `GET ${rawPath}`);
  }

  await t.test('dot segments, encoded slashes, doubled prefixes: never the other cluster, never a 500', { timeout: 600_000 }, async () => {
    const seg = fc.constantFrom('a', 'b', '..', '.', '%2e%2e', '%2E', '%2F', '%2f..%2fb', 'a%2F..%2Fb', 'k8s', 'clusters', '', 'api', 'v1', 'namespaces', 'default', 'pods', '%00', '%', 'b%00', 'A', 'B', '%61', '%62');
    const rawPath = fc.oneof(
      fc.tuple(fc.constantFrom('/k8s/clusters/', '/k8s/clusters//', '/k8s//clusters/', '/k8s/clusters/k8s/clusters/', '/k8s/k8s/clusters/', '//k8s/clusters/', '/k8s/clusters/a/../', '/k8s/clusters/a/k8s/clusters/'), fc.array(seg, { maxLength: 6 }), fc.constantFrom('', '?watch=1', '?x=/k8s/clusters/b', '#b'))
        .map(([prefix, segs, q]) => prefix + segs.join('/') + q),
      mutatedText(fc.constantFrom('/k8s/clusters/a/api/v1/namespaces', '/k8s/clusters/b/version')).map((p) => p.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c).replace(/%25/g, '%'))),
    );
    const cases = sample(fc.tuple(rawPath, fc.boolean()), 1_500);
    for (const [p, withBoth] of cases) {
      await tally.count('kube path', async () => {
        const seen = { a: apis.a!.requests.length, b: apis.b!.requests.length };
        // http.request refuses some paths itself (unescaped characters): nothing was sent then.
        const status = await get(p, withBoth ? both : onlyA).catch((err: unknown) => (err instanceof TypeError ? undefined : Promise.reject(err)));
        if (status === undefined) return;
        // 502/503 are the gateway's own answers when the member API server fails; 500 is a hub fault.
        assert.notEqual(status, 500, `GET ${p}: ${status}`);
        const m = /^\/k8s\/clusters\/([^/?#]+)/.exec(p);
        let named: string | undefined;
        try {
          named = m ? decodeURIComponent(m[1]!) : undefined;
        } catch {
          named = m?.[1];
        }
        for (const c of ['a', 'b'] as const) {
          if (apis[c]!.requests.length > seen[c]) assert.equal(named, c, `GET ${p} reached cluster ${c}`);
        }
        if (!withBoth) assert.equal(apis.b!.requests.length, seen.b, `GET ${p} as a user granted only cluster a reached cluster b`);
      })();
    }
  });
});

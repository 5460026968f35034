// Acceptance: JWTs from an external issuer (`warren hub --jwt-public-key FILE`) are a narrow credential.
// Real hubs, a real agent in front of the kube-apiserver stand-in (which records the impersonated
// identity), a real HTTP upstream, ES256 tokens signed here with the issuer's private key:
//
//   - a token without exp, or one minted for 30 days, is refused at the kube door (401 Status)
//   - a valid token is impersonated as jwt:SUB with jwt:GROUP groups, and only jwt: grants admit it
//   - by default it is no credential at the CONNECT door (407, the message names --jwt-doors) or the
//     SOCKS5 door, even with grants for both `ops` and `jwt:ops` on a reachable target
//   - with --jwt-doors kube,connect the same token opens CONNECT streams, through the jwt:ops grant only
//   - --jwt-issuer without --jwt-public-key stops the hub at start-up
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { waitForAudit } from '../support/audit.js';
import { ConnectRefused, connectThroughHub } from '../support/connectClient.js';
import { startFakeApiserver, type FakeApiserver } from '../support/kube/apiserver.js';
import { ChildGroup, run } from '../support/proc.js';
import { SocksClient } from '../support/socksClient.js';
import { startUpstream, type Upstream } from '../support/upstreams.js';
import { accessToken, cli, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

interface Answer {
  status: number;
  body: string;
}

/** GET over HTTPS to the hub with a Bearer token, trusting only its CA. */
function hubGet(hub: HubProc, urlPath: string, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${hub.url}${urlPath}`, { headers: { authorization: `Bearer ${token}` }, ca: fs.readFileSync(hub.caPath), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The hub's refusal of a CONNECT (the helper resolves only on 200). */
async function connectRefusal(hub: HubProc, target: string, token: string): Promise<{ status: number; code: string; message: string }> {
  const err = await connectThroughHub(hub, target, { token }).then(
    (socket) => (socket.destroy(), assert.fail(`CONNECT ${target} was let through`)),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConnectRefused, String(err));
  const body = JSON.parse(err.body) as { code: string; message: string };
  return { status: err.status, code: body.code, message: body.message };
}

/** One HTTP/1.1 GET through an open CONNECT stream; resolves with everything the upstream sent until its EOF. */
function getThrough(socket: TLSSocket, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (text += c));
    socket.once('end', () => (socket.destroy(), resolve(text)));
    socket.once('error', reject);
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    socket.resume();
  });
}

async function grant(hub: HubProc, args: readonly string[]): Promise<void> {
  const r = await cli(hub, ['grant', ...args]);
  assert.equal(r.code, 0, r.stderr);
}

describe('external JWTs: expiring, in their own name space, at the kube door unless --jwt-doors opens more', () => {
  const procs = new ChildGroup();
  const dir = tempDir('external-jwt');
  let issuerKey: KeyObject;
  let api: FakeApiserver;
  let upstream: Upstream;
  let kubeHub: HubProc;
  let socksPort: number;
  let connectHub: HubProc;
  const now = () => Math.floor(Date.now() / 1000);

  /** A token from the external issuer; `build` sets the time claims (default: issued now, 5 minutes). */
  const issue = (claims: Record<string, unknown>, build: (j: SignJWT) => SignJWT = (j) => j.setIssuedAt().setExpirationTime('5m')) =>
    build(new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT' })).sign(issuerKey);

  before(async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    issuerKey = keys.privateKey;
    const pub = path.join(dir, 'issuer.pub.pem');
    fs.writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));

    // Member RBAC for the namespaced identity only: a request impersonated as plain `bob` would be refused.
    api = await startFakeApiserver({ extraRules: [{ users: ['jwt:bob'], verbs: ['list'], apiGroups: [''], resources: ['pods'], namespaces: ['team-a'] }] });
    api.createPod('team-a', 'web-1');
    upstream = await startUpstream('http', { group: procs, listen: '127.0.0.1:0', body: 'external-jwt' });

    kubeHub = await startHub({ group: procs, dataDir: path.join(dir, 'hub-default'), args: ['--jwt-public-key', pub, '--socks-listen', '127.0.0.1:0'] });
    socksPort = kubeHub.socksPort!;
    const agentKubeconfig = path.join(dir, 'agent.kubeconfig');
    fs.writeFileSync(agentKubeconfig, api.kubeconfig('agent'), { mode: 0o600 });
    await startAgent({ group: procs, hub: kubeHub, name: 'edge-a', args: ['--kube', agentKubeconfig, '--cluster', 'prod'] });

    connectHub = await startHub({ group: procs, dataDir: path.join(dir, 'hub-connect'), args: ['--jwt-public-key', pub, '--jwt-doors', 'kube,connect'] });
    await startAgent({ group: procs, hub: connectHub, name: 'edge-b' });
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    await api?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('at the kube door (the default)', () => {
    const pods = '/k8s/clusters/prod/api/v1/namespaces/team-a/pods';

    before(async () => {
      // Grants for the names an external issuer could claim in the hub's own name space: they must not apply.
      await grant(kubeHub, ['--user', 'bob', '--cluster', 'prod']);
      await grant(kubeHub, ['--group', 'ops', '--cluster', 'prod']);
    });

    it('a token without exp → 401 saying so', async () => {
      const forever = await issue({ sub: 'bob', groups: ['ops'] }, (j) => j.setIssuedAt());
      const r = await hubGet(kubeHub, pods, forever);
      assert.equal(r.status, 401, r.body);
      const status = JSON.parse(r.body) as { kind: string; reason: string; message: string };
      assert.equal(status.kind, 'Status');
      assert.equal(status.reason, 'Unauthorized');
      assert.match(status.message, /^external token rejected: it has no exp claim/);
    });

    it('a token valid for 30 days (exp − iat) → 401 naming --jwt-max-ttl', async () => {
      const month = await issue({ sub: 'bob', groups: ['ops'] }, (j) => j.setIssuedAt().setExpirationTime(now() + 30 * 86_400));
      const r = await hubGet(kubeHub, pods, month);
      assert.equal(r.status, 401, r.body);
      assert.match((JSON.parse(r.body) as { message: string }).message, /valid for 30d \(exp − iat\), longer than --jwt-max-ttl 1d/);
    });

    it('a valid token is jwt:bob in group jwt:ops: plain bob/ops grants do not admit it, a jwt:bob grant does, and the member sees jwt:bob', async () => {
      const token = await issue({ sub: 'bob', groups: ['ops', 'warren:admins'] });
      const denied = await hubGet(kubeHub, pods, token);
      assert.equal(denied.status, 403, denied.body);
      assert.match((JSON.parse(denied.body) as { message: string }).message, /user "jwt:bob" has no grant for cluster prod/);

      await grant(kubeHub, ['--user', 'jwt:bob', '--cluster', 'prod']);
      const mark = api.requests.at(-1)?.id ?? 0;
      const r = await hubGet(kubeHub, pods, token);
      assert.equal(r.status, 200, r.body);
      assert.deepEqual((JSON.parse(r.body) as { items: { metadata: { name: string } }[] }).items.map((p) => p.metadata.name), ['web-1']);
      const seen = api.requests.filter((q) => q.id > mark && q.path === '/api/v1/namespaces/team-a/pods');
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.impersonatedUser, 'jwt:bob');
      assert.deepEqual(seen[0]!.impersonatedGroups, ['jwt:ops'], 'groups are namespaced and warren: groups dropped');
      await waitForAudit(kubeHub, (row) => row.user === 'jwt:bob' && row.target === 'prod' && row.status === 200, 'the kube row of jwt:bob', 10_000, 'kube');
    });
  });

  describe('at the other doors', () => {
    let target: string;

    before(async () => {
      const port = String(upstream.port);
      for (const hub of [kubeHub, connectHub]) {
        const agent = hub === kubeHub ? 'edge-a' : 'edge-b';
        await grant(hub, ['--group', 'ops', '--agent', agent, '--ports', port]);
        await grant(hub, ['--user', 'bob', '--agent', agent, '--ports', port]);
      }
      await grant(kubeHub, ['--group', 'jwt:ops', '--agent', 'edge-a', '--ports', port]);
      target = `edge-a:${port}`;
    });

    it('by default a valid token is refused at the CONNECT door (407 naming --jwt-doors) though grants for ops and jwt:ops exist', async () => {
      const token = await issue({ sub: 'bob', groups: ['ops'] });
      const refused = await connectRefusal(kubeHub, target, token);
      assert.equal(refused.status, 407);
      assert.equal(refused.code, 'WARREN_E_UNAUTHENTICATED');
      assert.equal(refused.message, "external JWTs are not accepted at the connect door (the hub accepts them at: kube); an operator can add connect to the hub's --jwt-doors");
      // A hub token for a member of ops gets through the same door to the same target: the refusal is the door's.
      const opsToken = await accessToken(kubeHub, 'ana', ['ops']);
      assert.match(await getThrough(await connectThroughHub(kubeHub, target, { token: opsToken }), target), /marker=external-jwt/);
      const metrics = await hubGet(kubeHub, '/metrics', kubeHub.adminToken);
      assert.match(metrics.body, /^warren_auth_failures_total\{door="connect"\} [1-9]/m);
    });

    it('by default a valid token is refused at the SOCKS5 door (RFC 1929 failure) while a hub token logs in', async () => {
      const token = await issue({ sub: 'bob', groups: ['ops'] });
      const jwtClient = await SocksClient.connect('127.0.0.1', socksPort);
      assert.equal(await jwtClient.greet([0x02]), 0x02);
      assert.equal(await jwtClient.login(token), 0x01);
      jwtClient.socket.destroy();
      const hubClient = await SocksClient.connect('127.0.0.1', socksPort);
      assert.equal(await hubClient.greet([0x02]), 0x02);
      assert.equal(await hubClient.login(await accessToken(kubeHub, 'ana', ['ops'])), 0x00);
      hubClient.socket.destroy();
    });

    it('with --jwt-doors kube,connect the token opens CONNECT streams, only through the jwt:ops grant', async () => {
      const token = await issue({ sub: 'bob', groups: ['ops'] });
      const b = `edge-b:${upstream.port}`;
      const noGrant = await connectRefusal(connectHub, b, token);
      assert.equal(noGrant.status, 403, 'grants for group ops and user bob do not apply to jwt:bob in jwt:ops');
      assert.equal(noGrant.code, 'WARREN_E_FORBIDDEN');
      await waitForAudit(connectHub, (row) => row.user === 'jwt:bob' && row.door === 'connect' && row.result === 'denied' && row.target === b, 'the denied stream of jwt:bob');

      await grant(connectHub, ['--group', 'jwt:ops', '--agent', 'edge-b', '--ports', String(upstream.port)]);
      assert.match(await getThrough(await connectThroughHub(connectHub, b, { token }), b), /^HTTP\/1\.1 200 .*marker=external-jwt/s);
      await waitForAudit(connectHub, (row) => row.user === 'jwt:bob' && row.door === 'connect' && row.result === 'ok' && row.target === b, 'the ok stream of jwt:bob');
    });
  });

  it('--jwt-issuer without --jwt-public-key stops the hub at start-up with WARREN_E_CONFIG', async () => {
    const r = await run(process.execPath, [WARREN_BIN, 'hub', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'hub-bad'), '--jwt-issuer', 'https://sso.example.com'], {
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--jwt-issuer without --jwt-public-key: there is no external issuer to apply it to \[WARREN_E_CONFIG\]/);
  });
});

// Acceptance: the hub's HTTP CONNECT door driven by real curl (`curl -p -x https://HUB`), on loopback.
// One hub, one agent "site1", one HTTP upstream beside the agent. Each case asserts what a client sees:
// the CONNECT status (curl's %{http_connect}), the JSON refusal body, the tunnelled bytes and their
// sha256, and the audit row the hub wrote.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, run, waitForLine, withDeadline } from '../support/proc.js';
import { seededSha256, sha256Hex, startUpstream, type Upstream } from '../support/upstreams.js';
import { accessToken, cli, cliJson, startAgent, startHub, tempDir, WARREN_BIN, type AgentProc, type HubProc } from '../support/warren.js';
import { waitForAudit } from '../support/audit.js';
import { freePort } from '../support/inProcess.js';

interface CurlResult {
  /** The status of the CONNECT (curl's %{http_connect}); 0 when curl never got one. */
  connect: number;
  /** The status of the tunnelled request; 0 when the tunnel was refused. */
  status: number;
  body: Buffer;
  exitCode: number | null;
  stderr: string;
}

interface RawAnswer {
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Sends one CONNECT over TLS by hand and reads the hub's answer to its end (refusals close the socket).
 * `pipelined`: bytes sent in the same write as the request, before any answer (a client that does not
 * wait for the 200).
 */
function rawConnect(hub: HubProc, target: string, headers: Record<string, string> = {}, pipelined = ''): Promise<RawAnswer> {
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return withDeadline(
    new Promise<RawAnswer>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: hub.port, ca: fs.readFileSync(hub.caPath), ALPNProtocols: ['http/1.1'] }, () =>
        socket.write(lines.join('\r\n') + '\r\n\r\n' + pipelined),
      );
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () => {
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return reject(new Error(`no HTTP answer to CONNECT ${target}: ${JSON.stringify(all.toString('latin1'))}`));
        const head = all.subarray(0, end).toString('latin1');
        resolve({ status: Number(head.split(' ')[1]), head, body: all.subarray(end + 4) });
      });
    }),
    10_000,
    `raw CONNECT ${target}`,
  );
}



describe('HTTP CONNECT door with real curl', () => {
  const procs = new ChildGroup();
  const dirs: string[] = [];
  let hub: HubProc;
  let agent: AgentProc;
  let http: Upstream;
  let userToken: string;
  let target: string;
  const curlDir = tempDir('curl');
  dirs.push(curlDir);
  let curlCalls = 0;

  before(async () => {
    hub = await startHub({ group: procs, args: ['--header-timeout', '2s'] });
    dirs.push(hub.dataDir);
    agent = await startAgent({ group: procs, hub, name: 'site1' });
    dirs.push(agent.dataDir);
    http = await startUpstream('http', { group: procs, listen: '127.0.0.1:0', body: 'connect-door' });
    userToken = await accessToken(hub, 'ana');
    target = `site1:${http.port}`;
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** `curl -p -x HUB --proxy-cacert ca.crt [auth] http://TARGET/PATH`, body to a file, statuses on stdout. */
  async function curl(urlPath: string, auth: string[], urlTarget = target): Promise<CurlResult> {
    const out = path.join(curlDir, `body-${++curlCalls}`);
    const r = await run(
      'curl',
      ['-sS', '-p', '--max-time', '20', '-x', hub.url, '--proxy-cacert', hub.caPath, ...auth, '-o', out, '-w', '%{http_connect} %{http_code}', `http://${urlTarget}${urlPath}`],
      { timeoutMs: 30_000 },
    );
    const [connect, status] = r.stdout.trim().split(' ').map(Number);
    return { connect: connect ?? 0, status: status ?? 0, body: fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0), exitCode: r.code, stderr: r.stderr };
  }
  const bearer = (token: string) => ['--proxy-header', `Proxy-Authorization: Bearer ${token}`];

  it('no credentials → 407 with Proxy-Authenticate', async () => {
    const r = await curl('/', []);
    assert.equal(r.connect, 407, r.stderr);
    assert.equal(r.status, 0);
    assert.notEqual(r.exitCode, 0);
    const raw = await rawConnect(hub, target);
    assert.equal(raw.status, 407);
    assert.match(raw.head, /^Proxy-Authenticate: .*Bearer/im);
    assert.equal(JSON.parse(raw.body.toString()).code, 'WARREN_E_UNAUTHENTICATED');
  });

  it('a wrong token → 407, and the token is not echoed back', async () => {
    const wrong = `${userToken.slice(0, -6)}AAAAAA`;
    const r = await curl('/', bearer(wrong));
    assert.equal(r.connect, 407, r.stderr);
    const garbage = await curl('/', bearer('not-a-token'));
    assert.equal(garbage.connect, 407, garbage.stderr);
    const raw = await rawConnect(hub, target, { 'Proxy-Authorization': `Bearer ${wrong}` });
    assert.equal(raw.status, 407);
    assert.equal(JSON.parse(raw.body.toString()).code, 'WARREN_E_UNAUTHENTICATED');
    assert.ok(!raw.body.toString().includes(wrong), 'the refusal must not contain the token');
  });

  it('a valid token without a grant → 403, audited as denied naming the target', async () => {
    const r = await curl('/', bearer(userToken));
    assert.equal(r.connect, 403, r.stderr);
    assert.equal(r.status, 0);
    const raw = await rawConnect(hub, target, { 'Proxy-Authorization': `Bearer ${userToken}` });
    assert.equal(raw.status, 403);
    assert.equal(JSON.parse(raw.body.toString()).code, 'WARREN_E_FORBIDDEN');

    const rows = await cliJson<Array<{ kind: string; user: string; door: string; target: string; result: string; reason: string }>>(hub, [
      'audit', '--user', 'ana', '--kind', 'stream',
    ]);
    const denied = rows.filter((row) => row.result === 'denied');
    assert.ok(denied.length >= 2, `expected the two refusals in the audit: ${JSON.stringify(rows)}`);
    for (const row of denied) {
      assert.equal(row.user, 'ana');
      assert.equal(row.door, 'connect');
      assert.equal(row.target, target);
      assert.ok(row.reason.includes(target), `reason should name ${target}: ${row.reason}`);
    }
  });

  it('after `warren grant --user ana --agent site1 --ports PORT` → 200 with the body intact', async () => {
    const g = await cli(hub, ['grant', '--user', 'ana', '--agent', 'site1', '--ports', String(http.port)]);
    assert.equal(g.code, 0, g.stderr);

    const hello = await curl('/', bearer(userToken));
    assert.equal(hello.connect, 200, hello.stderr);
    assert.equal(hello.status, 200);
    assert.match(hello.body.toString(), /^hello from \S+ marker=connect-door\n$/);

    const n = 3 * 1024 * 1024 + 17;
    const big = await curl(`/bytes?n=${n}&seed=door`, bearer(userToken));
    assert.equal(big.connect, 200, big.stderr);
    assert.equal(big.status, 200);
    assert.equal(big.body.length, n);
    assert.equal(sha256Hex(big.body), seededSha256('door', n));

    // The grant is for that port only: another port on the same agent stays forbidden.
    const other = await curl('/', bearer(userToken), `site1:${http.port === 65535 ? 1 : http.port + 1}`);
    assert.equal(other.connect, 403, other.stderr);

    // The row is written when the hub's relay finishes, which may be just after curl exits: follow it.
    await waitForAudit(hub, (row) => row.user === 'ana' && row.door === 'connect' && row.result === 'ok' && row.target === target && (row.bytesOut ?? 0) > n, `an ok stream row carrying > ${n} bytes`);
  });

  it('Basic auth with the token as password also works', async () => {
    const r = await curl('/', ['--proxy-user', `ana:${userToken}`]);
    assert.equal(r.connect, 200, r.stderr);
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /marker=connect-door/);
    const wrong = await curl('/', ['--proxy-user', 'ana:wrong']);
    assert.equal(wrong.connect, 407, wrong.stderr);
  });

  it('a request sent right behind the CONNECT (no wait for the 200) is answered; to a closed port the client gets the 502, not its bytes back', async () => {
    const auth = { 'Proxy-Authorization': `Bearer ${userToken}` };
    const get = `GET / HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`;
    const ok = await rawConnect(hub, target, auth, get);
    assert.equal(ok.status, 200, ok.head);
    const answer = ok.body.toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\r\n\r\nhello from \S+ marker=connect-door\n$/);
    await waitForAudit(hub, (row) => row.user === 'ana' && row.door === 'connect' && row.result === 'ok' && row.bytesIn === get.length, `an ok stream row with bytesIn ${get.length}`);

    // The bytes went out before the agent dialled; the dial fails: the door still answers the refusal.
    const closed = await freePort();
    const g = await cli(hub, ['grant', '--user', 'ana', '--agent', 'site1', '--ports', String(closed)]);
    assert.equal(g.code, 0, g.stderr);
    const refused = await rawConnect(hub, `site1:${closed}`, auth, get);
    assert.equal(refused.status, 502, refused.head);
    assert.equal(JSON.parse(refused.body.toString()).code, 'WARREN_E_TARGET_REFUSED');
    await waitForAudit(hub, (row) => row.user === 'ana' && row.target === `site1:${closed}` && row.result === 'error' && (row.reason ?? '').startsWith('WARREN_E_TARGET_REFUSED'), 'the refused stream audited as an error');
  });

  it('unknown host nosuch:80 → 502 with a JSON body naming the host', async () => {
    const r = await curl('/', bearer(userToken), 'nosuch:80');
    assert.equal(r.connect, 502, r.stderr);
    const raw = await rawConnect(hub, 'nosuch:80', { 'Proxy-Authorization': `Bearer ${userToken}` });
    assert.equal(raw.status, 502);
    assert.match(raw.head, /^Content-Type: application\/json/im);
    const body = JSON.parse(raw.body.toString()) as { code: string; message: string; host?: string };
    assert.equal(body.code, 'WARREN_E_UNKNOWN_TARGET');
    assert.match(body.message, /"nosuch"/);
    assert.equal(body.host, 'nosuch');
  });

  it('a user client certificate (`warren user-cert create`) works instead of a token; an agent certificate does not', async () => {
    const dir = tempDir('usercert');
    dirs.push(dir);
    const prefix = path.join(dir, 'ana');
    const made = await cli(hub, ['user-cert', 'create', '--user', 'ana', '--ttl', '1h', '--out', prefix]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(fs.statSync(`${prefix}.key`).mode & 0o777, 0o600);
    const r = await curl('/', ['--proxy-cert', `${prefix}.crt`, '--proxy-key', `${prefix}.key`]);
    assert.equal(r.connect, 200, r.stderr);
    assert.match(r.body.toString(), /marker=connect-door/);
    await waitForAudit(hub, (row) => row.user === 'ana' && row.door === 'connect' && row.result === 'ok' && row.target === target, 'the certificate-authenticated stream');
    // The agent's own certificate is signed by the same CA but is not a user identity.
    const agentDir = agent.dataDir;
    const asAgent = await curl('/', ['--proxy-cert', path.join(agentDir, 'agent.crt'), '--proxy-key', path.join(agentDir, 'agent.key')]);
    assert.equal(asAgent.connect, 407, asAgent.stderr);
  });

  it('agent stopped → 503 WARREN_E_AGENT_OFFLINE', async () => {
    // The audit trail is the event source: the hub writes an agent row when a tunnel closes.
    const follow = procs.spawn(process.execPath, [WARREN_BIN, 'audit', '--follow', '-o', 'json', '--kind', 'agent', '--agent', 'site1'], { env: hub.env() });
    await waitForLine(follow, /"reason":"connected: /, { timeoutMs: 10_000, stream: 'stdout' });
    await procs.kill(agent.child);
    await waitForLine(follow, /"reason":"disconnected: /, { timeoutMs: 10_000, stream: 'stdout' });
    await procs.kill(follow);

    const r = await curl('/', bearer(userToken));
    assert.equal(r.connect, 503, r.stderr);
    const raw = await rawConnect(hub, target, { 'Proxy-Authorization': `Bearer ${userToken}` });
    assert.equal(raw.status, 503);
    const body = JSON.parse(raw.body.toString()) as { code: string; message: string };
    assert.equal(body.code, 'WARREN_E_AGENT_OFFLINE');
    assert.match(body.message, /site1/);
  });
});

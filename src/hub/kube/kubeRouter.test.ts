/**
 * The kube router in process: a real hub, an agent started with --kube pointing at a kube-apiserver
 * stand-in (test/support/kube/apiserver.ts) in this same process, and requests over HTTPS.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, test } from 'node:test';
import { startFakeApiserver } from '../../../test/support/kube/apiserver.js';
import { inProcessHub } from '../../../test/support/inProcess.js';
import { tempDir } from '../../../test/support/warren.js';
import { withDeadline } from '../../../test/support/proc.js';
import type { Admission } from '../../doors/door.js';
import { silentLogger } from '../../shared/log.js';
import type { AuditRow } from '../../store/store.js';
import { duplexPair } from '../../tunnel/duplexPair.js';
import { KubeRouter } from './kubeRouter.js';

const api = await startFakeApiserver();
after(() => api.close());
const dir = tempDir('kube-router');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const kubeconfig = path.join(dir, 'agent.kubeconfig');
fs.writeFileSync(kubeconfig, api.kubeconfig('agent'), { mode: 0o600 });

const lab = await inProcessHub();
await lab.agent('k1-a', { kube: kubeconfig, cluster: 'k1' });
await lab.grant({ subjectKind: 'user', subject: 'dev', cluster: 'k1' });
const dev = (await lab.token('dev')).token;
const PODS = '/k8s/clusters/k1/api/v1/namespaces/team-a/pods';

test("a granted user's request reaches the member API as that user (impersonated by the agent's credentials)", async () => {
  const r = await lab.request('GET', PODS, { token: dev });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.kind, 'PodList');
  const seen = api.requests.at(-1)!;
  assert.equal(seen.path, '/api/v1/namespaces/team-a/pods');
  assert.equal(seen.authenticatedUser, api.identities.agent!.user);
  assert.equal(seen.user, 'dev');
});

test("the member cluster's RBAC decides for the impersonated user", async () => {
  const r = await lab.request('GET', '/k8s/clusters/k1/api/v1/namespaces/kube-system/pods', { token: dev });
  assert.equal(r.status, 403);
  assert.equal(api.requests.at(-1)!.user, 'dev');
});

test('without a grant, for an unknown cluster, or without credentials the hub answers and the member API sees nothing', async () => {
  const seen = api.requests.length;
  const eve = (await lab.token('eve')).token;
  assert.equal((await lab.request('GET', PODS, { token: eve })).status, 403);
  assert.equal((await lab.request('GET', '/k8s/clusters/nosuch/api/v1/pods', { token: dev })).status, 404);
  assert.equal((await lab.request('GET', PODS)).status, 401);
  assert.equal(api.requests.length, seen);
});

test('a GET whose answer is cut half way by its stream dying is sent again on a fresh stream: the client gets the whole answer once', async (t) => {
  // The router alone, its streams in memory: the pooled stream's agent sends the head and half the body
  // and then dies (its stream is destroyed as a reset one is); the fresh stream's agent answers whole.
  const body = JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [{ metadata: { name: 'whole' } }] });
  const agentSide = (answer: (res: http.ServerResponse) => void) => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      answer(res);
    });
    const [hubEnd, agentEnd] = duplexPair();
    server.emit('connection', agentEnd);
    return hubEnd;
  };
  const dying = agentSide((res) => res.write(body.slice(0, body.length / 2)));
  // Dies once the hub has the half: the client would have it too if the router passed it on.
  dying.on('data', (c: Buffer) => c.includes('"kind"') && dying.destroy(new Error('tunnel stream reset (code 8)')));
  const pool = new (class extends http.Agent {
    override createConnection(_o: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): undefined {
      cb?.(null, dying);
      return undefined;
    }
  })();
  const rows: Array<Partial<AuditRow>> = [];
  const admission: Admission = {
    kubeGroups: [], revoked: new AbortController().signal, pool, usedAgent: () => undefined, end: () => undefined,
    dial: () => Promise.resolve({ agent: 'k-b', stream: agentSide((res) => res.end(body)) }),
  };
  const router = new KubeRouter({
    opener: { admit: () => Promise.resolve(admission) },
    authenticate: () => Promise.resolve({ user: 'dev', groups: [], via: 'token' }),
    record: (row) => (rows.push(row), Promise.resolve()),
    jwt: undefined,
    log: silentLogger,
  });
  const front = http.createServer((req, res) => router.handleRequest(req, res));
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  t.after(() => (front.closeAllConnections(), front.close()));
  const got = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    http.get({ port: (front.address() as AddressInfo).port, path: '/k8s/clusters/k1/api/v1/namespaces/team-a/pods', headers: { authorization: 'Bearer x' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('close', () => res.complete || reject(new Error(`the answer was cut after ${text.length} bytes of its body`)));
    }).on('error', reject);
  });
  assert.deepEqual(got, { status: 200, text: body });
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.status, 200);
});

test('pipelined requests on one connection are each answered, in order (the second is admitted while the first is still being answered)', async (t) => {
  // Node's http client does not pipeline: the two requests are written by hand, back to back, on one TLS
  // connection. The second one's response has no socket until the first is finished (Node's http server
  // queues it), and the router once took that for a client that had gone, and never answered it.
  const url = new URL(lab.hub.url);
  const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: fs.readFileSync(lab.hub.caPath), servername: 'localhost', ALPNProtocols: ['http/1.1'] });
  t.after(() => socket.destroy());
  await once(socket, 'secureConnect');
  const request = (ns: string) => `GET /k8s/clusters/k1/api/v1/namespaces/${ns}/pods HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ${dev}\r\n\r\n`;
  socket.write(request('team-a') + request('kube-system'));
  let buffered = Buffer.alloc(0);
  const statuses: number[] = [];
  await withDeadline(new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        assert.ok(Number.isInteger(length), `a sized answer: ${head}`);
        if (buffered.length < end + 4 + length) return;
        statuses.push(Number(head.slice(9, 12)));
        buffered = buffered.subarray(end + 4 + length);
        if (statuses.length === 2) return resolve();
      }
    });
  }), 10_000, 'both pipelined answers');
  assert.deepEqual(statuses, [200, 403], 'team-a is allowed, kube-system is not (the member cluster\'s RBAC), in the order asked');
});

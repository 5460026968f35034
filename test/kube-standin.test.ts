// Proves the kube-apiserver stand-in (test/support/kube/) with the REAL clients, before any Warren code
// is involved, on every path Warren's tests drive through it: kubectl v1.32 (generated kubeconfigs,
// impersonation through kubeconfig `as`/`as-groups`, get, watch, paging, apply, delete, auth whoami,
// exec, port-forward, logs -f) and @kubernetes/client-node 1.4. If this file fails, no Warren
// Kubernetes test result counts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { AGENT_SERVICE_ACCOUNT, startFakeApiserver, type FakeApiserver, type KubeconfigUser, type RecordedRequest } from './support/kube/apiserver.js';
import { SPDY_DICTIONARY } from './support/kube/spdy.js';
import { ChildGroup, run, waitForLine, withDeadline, type RunResult } from './support/proc.js';


/** Sends `data`, half-closes, and resolves with everything the server sent until its EOF. */
function tcpExchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end(data));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
  });
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request to the stand-in, trusting its CA. */
function raw(api: FakeApiserver, method: string, path: string, headers: Record<string, string | string[]> = {}, body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${api.url}${path}`, { method, headers, ca: api.caPem }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('kube-apiserver stand-in', () => {
  let api: FakeApiserver;
  let dir: string;
  const procs = new ChildGroup();
  const kubeconfigs = new Map<string, string>();

  /** Writes a kubeconfig for `user` once and returns its path. */
  function kc(name: string, user: string | KubeconfigUser): string {
    let path = kubeconfigs.get(name);
    if (!path) {
      path = join(dir, `${name}.kubeconfig`);
      writeFileSync(path, api.kubeconfig(user), { mode: 0o600 });
      kubeconfigs.set(name, path);
    }
    return path;
  }

  const kubectlEnv = () => ({ ...process.env, HOME: dir, KUBECONFIG: '' });

  function kubectlArgs(kubeconfig: string, args: string[]): string[] {
    return ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args];
  }

  function kubectl(kubeconfig: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return run('kubectl', kubectlArgs(kubeconfig, args), { input: opts.input, env: { ...kubectlEnv(), ...opts.env }, timeoutMs: 30_000 });
  }

  function requestsSince(mark: number, pred: (r: RecordedRequest) => boolean): RecordedRequest[] {
    return api.requests.filter((r) => r.id > mark && pred(r));
  }
  const mark = () => api.requests.at(-1)?.id ?? 0;

  // Identities used throughout, all as kubeconfigs kubectl reads (`as` = --as, `as-groups` = --as-group).
  const asDev = (): KubeconfigUser => ({ token: api.tokens.agent!, as: 'dev' });
  const asAdmins = (): KubeconfigUser => ({ token: api.tokens.agent!, as: 'alice', asGroups: ['cluster-admins'] });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-kube-standin-'));
    api = await startFakeApiserver();
    api.createPod('team-a', 'web-1');
    api.createPod('team-a', 'web-2');
    api.createPod('team-b', 'db-1');
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('protocol details', () => {
    it('serves /version and aggregated discovery, the flavour kubectl 1.32 asks for', async () => {
      const h = { Authorization: `Bearer ${api.adminToken}` };
      const version = JSON.parse((await raw(api, 'GET', '/version', h)).body) as { gitVersion: string; major: string };
      assert.equal(version.major, '1');
      const aggregated = await raw(api, 'GET', '/apis', {
        ...h,
        Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json',
      });
      assert.equal(aggregated.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
      const groups = (JSON.parse(aggregated.body) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name);
      assert.deepEqual(groups, ['apps', 'rbac.authorization.k8s.io', 'authentication.k8s.io']);
      const legacy = await raw(api, 'GET', '/api', { ...h, Accept: 'application/json' });
      assert.equal(legacy.status, 406, 'not imitated: no test client asks for it');
      assert.equal(JSON.parse(legacy.body).reason, 'NotAcceptable');
    });

    it('answers an unknown token with a 401 Status and records no identity', async () => {
      const m = mark();
      const res = await raw(api, 'GET', '/api/v1/namespaces', { Authorization: 'Bearer not-a-token' });
      assert.equal(res.status, 401);
      assert.deepEqual(JSON.parse(res.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      const [rec] = requestsSince(m, () => true);
      assert.equal(rec?.status, 401);
      assert.equal(rec?.authenticatedUser, undefined);
      assert.equal(rec?.headers.authorization, 'Bearer', 'the scheme is recorded, never the token');
    });

    it('refuses Impersonate-Group without Impersonate-User, like the real impersonation filter', async () => {
      const res = await raw(api, 'GET', '/api/v1/pods', { Authorization: `Bearer ${api.tokens.agent!}`, 'Impersonate-Group': 'cluster-admins' });
      assert.equal(res.status, 500);
      assert.match(JSON.parse(res.body).message, /without impersonating a user/);
    });

    it('streams watch events as JSON lines with increasing resourceVersions, including objects created later', async () => {
      const rv = api.resourceVersion();
      const events: { type: string; object: { metadata: { name: string; resourceVersion: string } } }[] = [];
      const req = httpsRequest(`${api.url}/api/v1/namespaces/team-a/pods?watch=true&resourceVersion=${rv}`, {
        headers: { Authorization: `Bearer ${api.adminToken}` },
        ca: api.caPem,
      });
      const done = new Promise<void>((resolve, reject) => {
        req.on('response', (res) => {
          assert.equal(res.headers['transfer-encoding'], 'chunked');
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              events.push(JSON.parse(buf.slice(0, nl)));
              buf = buf.slice(nl + 1);
              if (events.length === 2) resolve();
            }
          });
          // The watch is open once headers arrived: create after that.
          api.createPod('team-a', 'watch-raw-1');
          api.createPod('team-a', 'watch-raw-2');
        });
        req.on('error', reject);
      });
      req.end();
      await withDeadline(done, 10_000, 'two watch events');
      req.destroy();
      assert.deepEqual(events.map((e) => [e.type, e.object.metadata.name]), [['ADDED', 'watch-raw-1'], ['ADDED', 'watch-raw-2']]);
      const [a, b] = events.map((e) => Number(e.object.metadata.resourceVersion));
      assert.ok(a! > rv && b! > a!, `resourceVersions ${a}, ${b} after ${rv}`);
    });

    it('has the SPDY/3 header dictionary byte for byte (1423 bytes, the draft-3 digest)', async () => {
      const { createHash } = await import('node:crypto');
      assert.equal(SPDY_DICTIONARY.length, 1423);
      assert.equal(createHash('sha256').update(SPDY_DICTIONARY).digest('hex'), '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
    });
  });

  describe('driven by kubectl', () => {
    it('lets the agent token impersonate dev to list pods in team-a', async () => {
      const m = mark();
      const r = await kubectl(kc('dev', asDev()), ['get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/m);
      assert.match(r.stdout, /^web-1\s+1\/1\s+Running\s+0\s+/m);
      assert.match(r.stdout, /^web-2\s+/m);
      const list = requestsSince(m, (q) => q.path === '/api/v1/namespaces/team-a/pods' && q.verb === 'list');
      assert.equal(list.length, 1);
      assert.equal(list[0]!.authenticatedUser, AGENT_SERVICE_ACCOUNT);
      assert.equal(list[0]!.user, 'dev');
      assert.equal(list[0]!.impersonatedUser, 'dev');
      assert.deepEqual(list[0]!.groups, ['system:authenticated']);
      assert.equal(list[0]!.status, 200);
      // kubectl 1.32 asks for aggregated discovery and server-side Tables.
      assert.ok(requestsSince(m, (q) => q.path === '/api').some((q) => /apidiscovery\.k8s\.io;v=v2/.test(q.headers.accept ?? '')));
      assert.match(list[0]!.headers.accept ?? '', /as=Table;v=v1;g=meta\.k8s\.io/);
    });

    it('forbids dev everywhere else, with the real apiserver messages', async () => {
      const dev = kc('dev', asDev());
      const all = await kubectl(dev, ['get', 'pods', '-A']);
      assert.equal(all.code, 1);
      assert.equal(all.stderr.trim(), 'Error from server (Forbidden): pods is forbidden: User "dev" cannot list resource "pods" in API group "" at the cluster scope');
      const ns = await kubectl(dev, ['get', 'ns']);
      assert.equal(ns.code, 1);
      assert.equal(ns.stderr.trim(), 'Error from server (Forbidden): namespaces is forbidden: User "dev" cannot list resource "namespaces" in API group "" at the cluster scope');
      const other = await kubectl(dev, ['get', 'pods', '-n', 'team-b']);
      assert.equal(other.stderr.trim(), 'Error from server (Forbidden): pods is forbidden: User "dev" cannot list resource "pods" in API group "" in the namespace "team-b"');
      const exec = await kubectl(dev, ['exec', '-n', 'team-a', 'web-1', '--', 'true']);
      assert.equal(exec.code, 1);
      assert.match(exec.stderr, /pods "web-1" is forbidden: User "dev" cannot create resource "pods\/exec" in API group "" in the namespace "team-a"/);
    });

    it('lets the cluster-admins group list everything', async () => {
      const m = mark();
      const admins = kc('admins', asAdmins());
      const pods = await kubectl(admins, ['get', 'pods', '-A']);
      assert.equal(pods.code, 0, pods.stderr);
      assert.match(pods.stdout, /^team-a\s+web-1\s+/m);
      assert.match(pods.stdout, /^team-b\s+db-1\s+/m);
      const ns = await kubectl(admins, ['get', 'ns']);
      assert.equal(ns.code, 0, ns.stderr);
      for (const name of ['default', 'kube-system', 'team-a', 'team-b']) assert.match(ns.stdout, new RegExp(`^${name}\\s+Active\\s+`, 'm'));
      const seen = requestsSince(m, (q) => q.path === '/api/v1/namespaces' && q.verb === 'list')[0];
      assert.equal(seen?.user, 'alice');
      assert.deepEqual(seen?.impersonatedGroups, ['cluster-admins']);
      assert.deepEqual(seen?.headers.impersonateGroup, ['cluster-admins']);
      assert.deepEqual(seen?.groups, ['cluster-admins', 'system:authenticated']);
      const who = await kubectl(admins, ['auth', 'whoami', '-o', 'json']);
      assert.deepEqual(JSON.parse(who.stdout).status.userInfo, { username: 'alice', groups: ['cluster-admins', 'system:authenticated'] });
    });

    it('refuses impersonation to a token without the impersonate grant, and unknown tokens', async () => {
      const r = await kubectl(kc('nobody-as-dev', { token: api.tokens.nobody!, as: 'dev' }), ['get', 'pods', '-n', 'team-a']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim(), 'Error from server (Forbidden): users "dev" is forbidden: User "nobody" cannot impersonate resource "users" in API group "" at the cluster scope');
      const bad = await kubectl(kc('bad-token', { token: 'not-a-real-token' }), ['get', 'pods', '-n', 'team-a']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /You must be logged in to the server \(Unauthorized\)/);
    });

    it('pages a list with limit/continue (--chunk-size=1)', async () => {
      const m = mark();
      const r = await kubectl(kc('admin', 'admin'), ['get', 'pods', '-n', 'team-b', '--chunk-size=1', '-o', 'name']);
      assert.equal(r.code, 0, r.stderr);
      api.createPod('team-b', 'db-2');
      const r2 = await kubectl(kc('admin', 'admin'), ['get', 'pods', '-n', 'team-b', '--chunk-size=1', '-o', 'name']);
      assert.deepEqual(r2.stdout.trim().split('\n'), ['pod/db-1', 'pod/db-2']);
      const pages = requestsSince(m, (q) => q.path === '/api/v1/namespaces/team-b/pods');
      assert.ok(pages.some((q) => /(^|&)limit=1(&|$)/.test(q.query)));
      assert.ok(pages.some((q) => /(^|&)continue=/.test(q.query)), pages.map((q) => q.query).join(' | '));
    });

    it('prints a pod created after `kubectl get --watch` started', async () => {
      const watch = procs.spawn('kubectl', kubectlArgs(kc('dev', asDev()), ['get', 'pods', '-n', 'team-a', '--watch']), { env: kubectlEnv() });
      await waitForLine(watch, /^web-1\s+1\/1\s+Running/, { timeoutMs: 15_000, stream: 'stdout' });
      const name = `late-${randomBytes(3).toString('hex')}`;
      // The initial list is printed before the watch request goes out: create only once the watch is open.
      await withDeadline(
        (async () => {
          while (!api.requests.some((q) => q.verb === 'watch' && q.namespace === 'team-a' && q.user === 'dev' && q.status === 200)) {
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
        10_000,
        'the watch request',
      );
      api.createPod('team-a', name);
      await waitForLine(watch, new RegExp(`^${name}\\s+1/1\\s+Running\\s+0\\s+`), { timeoutMs: 10_000, stream: 'stdout' });
      await procs.kill(watch);
      const w = api.requests.find((q) => q.verb === 'watch' && q.user === 'dev');
      assert.match(w?.query ?? '', /(^|&)watch=true(&|$)/);
      assert.match(w?.query ?? '', /(^|&)resourceVersion=\d+/);
    });

    it('applies a manifest (create, then update by strategic merge patch, then server-side), and deletes it', async () => {
      const admins = kc('admins', asAdmins());
      const file = join(dir, 'pod.yaml');
      const manifest = (image: string) => `apiVersion: v1
kind: Pod
metadata:
  name: applied
  namespace: team-a
  labels: { app: demo }
spec:
  containers:
  - name: main
    image: ${image}
    ports: [{ containerPort: 80 }]
`;
      writeFileSync(file, manifest('nginx:1.27'));
      const m = mark();
      const created = await kubectl(admins, ['apply', '-f', file]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout.trim(), 'pod/applied created');
      const live = api.getObject('pods', 'team-a', 'applied');
      assert.match(String((live?.metadata as Record<string, Record<string, string>>).annotations?.['kubectl.kubernetes.io/last-applied-configuration']), /nginx:1\.27/);

      writeFileSync(file, manifest('nginx:1.28'));
      const updated = await kubectl(admins, ['apply', '-f', file]);
      assert.equal(updated.stdout.trim(), 'pod/applied configured', updated.stderr);
      const patch = requestsSince(m, (q) => q.method === 'PATCH' && q.name === 'applied')[0];
      assert.equal(patch?.headers.contentType, 'application/strategic-merge-patch+json');
      const image = await kubectl(admins, ['get', 'pod', 'applied', '-n', 'team-a', '-o', 'jsonpath={.spec.containers[0].image}']);
      assert.equal(image.stdout, 'nginx:1.28');

      const ssa = await kubectl(admins, ['apply', '--server-side', '--force-conflicts', '-f', file]);
      assert.equal(ssa.stdout.trim(), 'pod/applied serverside-applied', ssa.stderr);
      const applies = requestsSince(m, (q) => q.headers.contentType === 'application/apply-patch+yaml');
      assert.ok(applies.some((q) => /(^|&)fieldManager=kubectl(&|$)/.test(q.query) && /(^|&)force=true/.test(q.query)), applies.map((q) => q.query).join(' | '));

      const dry = await kubectl(admins, ['delete', '-f', file, '--dry-run=server']);
      assert.equal(dry.stdout.trim(), 'pod "applied" deleted (server dry run)');
      assert.ok(api.getObject('pods', 'team-a', 'applied'), 'a server dry run changes nothing');

      const deleted = await kubectl(admins, ['delete', '-f', file]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(deleted.stdout.trim(), 'pod "applied" deleted');
      assert.equal(api.getObject('pods', 'team-a', 'applied'), undefined);
    });

    it('lets dev create and delete pods in team-a through kubectl apply/delete', async () => {
      const dev = kc('dev', asDev());
      const file = join(dir, 'dev-pod.yaml');
      writeFileSync(file, 'apiVersion: v1\nkind: Pod\nmetadata: { name: dev-pod, namespace: team-a }\nspec:\n  containers: [{ name: main, image: busybox }]\n');
      const created = await kubectl(dev, ['apply', '-f', file]);
      assert.equal(created.stdout.trim(), 'pod/dev-pod created', created.stderr);
      const deleted = await kubectl(dev, ['delete', '-f', file]);
      assert.equal(deleted.stdout.trim(), 'pod "dev-pod" deleted', deleted.stderr);
    });

    for (const transport of ['websocket', 'spdy'] as const) {
      it(`execs \`cat\`, which echoes stdin (${transport})`, async () => {
        const env = transport === 'spdy' ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' } : {};
        const m = mark();
        const payload = `hello ${transport} ${randomBytes(4).toString('hex')}\nsecond line\n`;
        const r = await kubectl(kc('admins', asAdmins()), ['exec', '-i', '-n', 'team-a', 'web-1', '--', 'cat'], { input: payload, env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, payload);
        const up = requestsSince(m, (q) => q.subresource === 'exec')[0];
        assert.equal(up?.status, 101);
        if (transport === 'websocket') {
          assert.equal(up?.headers.upgrade?.toLowerCase(), 'websocket');
          assert.equal(up?.protocol, 'v5.channel.k8s.io');
        } else {
          // Regression: SPDY header blocks must end with a sync-flush marker, or Go's inflater never
          // hands out the SYN_REPLY headers and kubectl times out after 30 s.
          assert.equal(up?.headers.upgrade, 'SPDY/3.1');
          assert.equal(up?.protocol, 'v5.channel.k8s.io');
        }
        const failed = await kubectl(kc('admins', asAdmins()), ['exec', '-n', 'team-a', 'web-1', '--', 'false'], { env });
        assert.equal(failed.code, 1);
        assert.match(failed.stderr, /command terminated with exit code 1/);
      });
    }

    for (const transport of ['websocket', 'spdy'] as const) {
      it(`port-forwards to a pod port that echoes, half-close included (${transport})`, async () => {
        const env = transport === 'spdy' ? { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' } : {};
        const m = mark();
        const pf = procs.spawn('kubectl', kubectlArgs(kc('admins', asAdmins()), ['port-forward', '-n', 'team-a', 'pod/web-1', ':80']), {
          env: { ...kubectlEnv(), ...env },
        });
        const [, local] = await waitForLine(pf, /^Forwarding from 127\.0\.0\.1:(\d+) -> 80$/, { timeoutMs: 15_000, stream: 'stdout' });
        for (let i = 0; i < 2; i++) {
          const data = randomBytes(200_000);
          const echoed = await withDeadline(tcpExchange(Number(local), data), 10_000, 'echo through port-forward');
          assert.ok(echoed.equals(data), `connection ${i}: ${echoed.length} bytes back of ${data.length}`);
        }
        await procs.kill(pf);
        const up = requestsSince(m, (q) => q.subresource === 'portforward')[0];
        assert.equal(up?.status, 101);
        assert.equal(up?.protocol, transport === 'websocket' ? 'SPDY/3.1+portforward.k8s.io' : 'portforward.k8s.io');
      });
    }

    it('streams `kubectl logs -f` as lines are appended', async () => {
      api.appendLog('team-a', 'web-2', 'first line');
      const logs = procs.spawn('kubectl', kubectlArgs(kc('admins', asAdmins()), ['logs', '-f', '-n', 'team-a', 'web-2']), { env: kubectlEnv() });
      await waitForLine(logs, /^first line$/, { timeoutMs: 15_000, stream: 'stdout' });
      for (let i = 0; i < 3; i++) {
        const line = `appended ${i} ${randomBytes(3).toString('hex')}`;
        api.appendLog('team-a', 'web-2', line);
        await waitForLine(logs, new RegExp(`^${line}$`), { timeoutMs: 10_000, stream: 'stdout' });
      }
      await procs.kill(logs);
      assert.ok(api.requests.some((q) => q.subresource === 'log' && /(^|&)follow=true/.test(q.query)));
    });
  });

  describe('driven by @kubernetes/client-node 1.4', () => {
    it('lists pods with a loaded kubeconfig', async () => {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromString(api.kubeconfig('admin'));
      const core = kubeConfig.makeApiClient(CoreV1Api);
      const m = mark();
      const list = await core.listNamespacedPod({ namespace: 'team-a' });
      const names = list.items.map((p) => p.metadata?.name);
      assert.ok(names.includes('web-1') && names.includes('web-2'), names.join(','));
      assert.equal(list.items.find((p) => p.metadata?.name === 'web-1')?.status?.phase, 'Running');
      const seen = requestsSince(m, (q) => q.path === '/api/v1/namespaces/team-a/pods')[0];
      assert.equal(seen?.user, 'kubernetes-admin');
    });

    it('impersonates through the kubeconfig `as` field and surfaces a 403', async () => {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromString(api.kubeconfig(asDev()));
      const core = kubeConfig.makeApiClient(CoreV1Api);
      const ok = await core.listNamespacedPod({ namespace: 'team-a' });
      assert.ok(ok.items.length >= 2);
      await assert.rejects(core.listNamespacedPod({ namespace: 'team-b' }), (err: { code?: number; body?: string }) => {
        assert.equal(err.code, 403);
        assert.match(String(err.body), /User \\?"dev\\?" cannot list resource \\?"pods\\?"/);
        return true;
      });
    });
  });
});

// Static egress source addresses and ingress rules (design §6) with real processes in network
// namespaces:
//
//   public  10.10.0.1 (hub) ── router (NAT) ── cluster 10.20.1.2 (cluster agent, clients, a web service)
//   public  10.30.0.1 ── gateway 10.30.0.2; gateway 10.40.0.1 + A 10.40.0.11 + B 10.40.0.12 ── external 10.40.0.2
//
// `external` runs a real PostgreSQL whose pg_hba.conf admits role `app` only from A, and an HTTP server
// that logs each client address. psql in `cluster` goes through an egress rule whose entry is on the
// cluster agent and whose gateway dials from A (admitted, inet_client_addr() = A) or B (refused by
// pg_hba.conf, PostgreSQL's own error). An ingress rule makes A:8080 reach the web service in
// `cluster`. Delete and recreate take effect by the time the command returns; rules come back after a
// hub restart; bad input is refused with nothing created. Last, an ExternalService document like the
// seed's (`warren apply -f`) does what those commands did, reads back with `warren get -o yaml`, and
// `warren delete externalservice` takes it all away; the cluster's /etc/hosts (ip netns exec's
// /etc/netns/NS/hosts) stands in for cluster DNS so its ingress rule can name web.ns1.svc.cluster.local.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import type { ChildProcess } from 'node:child_process';
import { natLab, type NatLab } from '../support/netns.js';
import { startPostgres } from '../support/postgres.js';
import { cli, cliJson, restartHub, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';
import { eventually, waitForExit, waitForLine } from '../support/proc.js';

const HUB_PORT = 8443;
const A = '10.40.0.11';
const B = '10.40.0.12';
const EXTERNAL = '10.40.0.2';
const CLUSTER = '10.20.1.2';
const PG_PASSWORD = 'app-secret';

// The seed's ExternalService with this lab's addresses: pods of ns1/db-client leave from A, ns2/web-client
// from B; the database (5432) and the HTTP server (8000) behind `external`; the way back from external
// to A:8080 reaches service ns1/web.
const EXTERNAL_SERVICE = `apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: ext
  annotations:
    warren.dev/entry-agent: cluster
spec:
  targetIP: ${EXTERNAL}
  sources:
    - service:
        namespace: ns1
        name: web
        ports: [8080]
      sourceIP: ${A}
    - service:
        namespace: ns2
        name: web-client
      sourceIP: ${B}
  ports:
    - protocol: TCP
      port: 5432
      targetPort: 25432
    - port: 8000
      targetPort: 28000
`;

interface Rule {
  name: string; kind: string; entry: string; gateway: string; sourceIp: string; target: string; listening: boolean; address: string | null;
  openStreams: number; connections: number; bytesIn: number; bytesOut: number; lastError: { code: string; message: string } | null; owner: string | null;
}

// An HTTP server that prints `client ADDRESS` for every request and answers `NAME`.
const HTTP_SERVER = `
const [host, port, name] = process.argv.slice(1);
require('node:http').createServer((req, res) => { console.log('client ' + req.socket.remoteAddress); res.end(name + '\\n'); })
  .listen(Number(port), host, () => console.log('listening'));`;

describe('static egress source IPs and ingress rules', () => {
  let nat: NatLab;
  let hub: HubProc;
  let httpLog: ChildProcess;

  const psql = (port: number, sql = 'SELECT inet_client_addr()') =>
    nat.lab.exec('cluster', 'psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-d', 'app', '-At', '-c', sql], {
      env: { ...process.env, PGPASSWORD: PG_PASSWORD, PGCONNECT_TIMEOUT: '5', PGSSLMODE: 'disable' }, timeoutMs: 20_000,
    });
  const curl = (host: string, url: string) => nat.lab.exec(host, 'curl', ['-sS', '--max-time', '5', url], { timeoutMs: 15_000 });
  const warren = (args: string[]) => cli(hub, args);
  const rules = (kind: 'egress' | 'ingress') => cliJson<Rule[]>(hub, [kind, 'ls']);
  const rule = async (kind: 'egress' | 'ingress', name: string) => (await rules(kind)).find((r) => r.name === name);

  before(async () => {
    nat = await natLab({ sites: ['cluster'] });
    const { lab } = nat;
    // Before anything starts in `cluster`: ip netns exec mounts this over /etc/hosts there.
    fs.mkdirSync(`/etc/netns/${lab.ns('cluster')}`, { recursive: true });
    fs.writeFileSync(`/etc/netns/${lab.ns('cluster')}/hosts`, `127.0.0.1 localhost\n${CLUSTER} web.ns1.svc.cluster.local\n`);
    await lab.addHost('gateway');
    await lab.link('public', '10.30.0.1/24', 'gateway', '10.30.0.2/24');
    await lab.route('gateway', '10.10.0.0/24', '10.30.0.1');
    await lab.addHost('external');
    const { ifA: gwIf } = await lab.link('gateway', '10.40.0.1/24', 'external', `${EXTERNAL}/24`);
    for (const ip of [A, B]) await lab.exec('gateway', 'ip', ['addr', 'add', `${ip}/24`, 'dev', gwIf]);

    hub = await startHub({ group: lab.group, netns: lab.ns('public'), listen: `${nat.public.ip}:${HUB_PORT}`, publicUrl: `https://${nat.public.ip}:${HUB_PORT}` });
    const pg = await startPostgres({
      group: lab.group, netns: lab.ns('external'), host: EXTERNAL, hba: [`host app app ${A}/32 scram-sha-256`], roles: [{ name: 'app', password: PG_PASSWORD }],
    });
    assert.equal(pg.port, 5432);
    httpLog = lab.spawn('external', process.execPath, ['-e', HTTP_SERVER, EXTERNAL, '8000', 'external']);
    const web = lab.spawn('cluster', process.execPath, ['-e', HTTP_SERVER, CLUSTER, '8080', 'web-in-cluster']);
    await Promise.all([httpLog, web].map((c) => waitForLine(c, /^listening$/, { timeoutMs: 10_000, stream: 'stdout' })));

    const fast = ['--reconnect-max', '500ms', '--ping-interval', '1s'];
    await startAgent({ group: lab.group, hub, name: 'cluster', netns: lab.ns('cluster'), args: ['--route', nat.site.subnet, ...fast] });
    await startAgent({ group: lab.group, hub, name: 'gw', netns: lab.ns('gateway'), args: ['--source-ip', `${A},${B}`, '--allow', EXTERNAL, ...fast] });
  });

  after(async () => {
    const ns = nat?.lab.ns('cluster');
    await nat?.destroy();
    if (ns) fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  });

  it('psql through the rule with source A is admitted and the server sees A; with source B pg_hba.conf refuses it', async (t) => {
    for (const [name, ip, port] of [['pg-a', A, 15432], ['pg-b', B, 15433]] as const) {
      const r = await warren(['egress', 'create', name, '--gateway', 'gw', '--target', `${EXTERNAL}:5432`, '--source-ip', ip, '--entry', `cluster:${port}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^egress rule ${name}: agent cluster at 0\\.0\\.0\\.0:${port} → ${EXTERNAL}:5432 from ${ip.replaceAll('.', '\\.')} via gw\\n$`));
    }
    const a = await psql(15432);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout.trim(), A);
    const b = await psql(15433);
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, new RegExp(`FATAL: {2}no pg_hba\\.conf entry for host "${B.replaceAll('.', '\\.')}", user "app", database "app"`));
    t.diagnostic(`source B refused by PostgreSQL: ${b.stderr.trim().split('\n').pop()}`);
  });

  it("the HTTP server's log shows A and B for the respective rules", async () => {
    for (const [name, ip, port] of [['web-a', A, 18000], ['web-b', B, 18001]] as const) {
      const r = await warren(['egress', 'create', name, '--gateway', 'gw', '--target', `${EXTERNAL}:8000`, '--source-ip', ip, '--entry', `cluster:${port}`]);
      assert.equal(r.code, 0, r.stderr);
      const got = await curl('cluster', `http://127.0.0.1:${port}/`);
      assert.equal(got.stdout, 'external\n', got.stderr);
      await waitForLine(httpLog, new RegExp(`^client ${ip.replaceAll('.', '\\.')}$`), { timeoutMs: 5_000, stream: 'stdout' });
    }
  });

  it('ls shows live state: listening, connections, bytes, no error', async () => {
    const a = await rule('egress', 'pg-a');
    assert.ok(a);
    assert.deepEqual([a.kind, a.gateway, a.sourceIp, a.target, a.listening, a.address, a.lastError], ['egress', 'gw', A, `${EXTERNAL}:5432`, true, '0.0.0.0:15432', null]);
    assert.ok(a.connections >= 1 && a.bytesIn > 0 && a.bytesOut > 0, JSON.stringify(a));
    const table = await warren(['egress', 'ls']);
    assert.match(table.stdout, /^NAME\s+ENTRY\s+GATEWAY\s+SOURCE-IP\s+TARGET\s+LISTENING\s+STREAMS\s+IN\s+OUT\s+LAST-ERROR\n/);
    assert.match(table.stdout, new RegExp(`\\npg-a\\s+cluster:0\\.0\\.0\\.0:15432\\s+gw\\s+${A.replaceAll('.', '\\.')}\\s+`));
  });

  it('ingress: from external, A:8080 reaches the service in cluster', async () => {
    const r = await warren(['ingress', 'create', 'web-in', '--gateway', 'gw', '--listen', `${A}:8080`, '--target', `${CLUSTER}:8080`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `ingress rule web-in: gateway gw at ${A}:8080 → ${CLUSTER}:8080\n`);
    const got = await curl('external', `http://${A}:8080/`);
    assert.equal(got.stdout, 'web-in-cluster\n', got.stderr);
    const direct = await curl('external', `http://${CLUSTER}:8080/`);
    assert.notEqual(direct.code, 0, 'external has no route to the cluster of its own');
    assert.equal((await rule('ingress', 'web-in'))?.connections, 1);
  });

  it('delete: new connections fail once the command returns; recreate: they work once it returns', async (t) => {
    const started = performance.now();
    const rm = await warren(['egress', 'rm', 'pg-a']);
    const returned = performance.now();
    assert.equal(rm.code, 0, rm.stderr);
    const refused = await psql(15432);
    const observed = performance.now();
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Connection refused/);
    t.diagnostic(`egress rm: command ${Math.round(returned - started)} ms, refused ${Math.round(observed - returned)} ms after it returned`);
    assert.ok(observed - started < 1_000 + (returned - started), 'refused right after the command');

    const again = performance.now();
    const create = await warren(['egress', 'create', 'pg-a', '--gateway', 'gw', '--target', `${EXTERNAL}:5432`, '--source-ip', A, '--entry', 'cluster:15432']);
    assert.equal(create.code, 0, create.stderr);
    const ok = await psql(15432);
    assert.equal(ok.stdout.trim(), A, ok.stderr);
    t.diagnostic(`egress create + first psql through it: ${Math.round(performance.now() - again)} ms`);

    const inRm = await warren(['ingress', 'rm', 'web-in']);
    assert.equal(inRm.code, 0, inRm.stderr);
    const gone = await curl('external', `http://${A}:8080/`);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /Connection refused|Couldn't connect/);
    assert.equal((await warren(['ingress', 'create', 'web-in', '--gateway', 'gw', '--listen', `${A}:8080`, '--target', `${CLUSTER}:8080`])).code, 0);
    assert.equal((await curl('external', `http://${A}:8080/`)).stdout, 'web-in-cluster\n');
  });

  it('a hub restart keeps the rules: they come back without being entered again', { timeout: 90_000 }, async (t) => {
    hub = await restartHub(hub);
    const up = performance.now();
    await eventually('every rule listening again', 60_000, async () => {
      const all = [...(await rules('egress')), ...(await rules('ingress'))];
      return all.length === 5 && all.every((r) => r.listening) ? true : undefined;
    });
    t.diagnostic(`all rules listening ${Math.round(performance.now() - up)} ms after the hub was up`);
    assert.equal((await psql(15432)).stdout.trim(), A);
    assert.match((await psql(15433)).stderr, /no pg_hba\.conf entry/);
    assert.equal((await curl('external', `http://${A}:8080/`)).stdout, 'web-in-cluster\n');
  });

  it('bad input is refused with a clear error and nothing is created', async () => {
    const before = (await rules('egress')).length + (await rules('ingress')).length;
    const refuse = async (args: string[], code: number, message: RegExp) => {
      const r = await warren(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr.trim(), message);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    };
    await refuse(['egress', 'create', 'x1', '--gateway', 'nosuch', '--target', `${EXTERNAL}:5432`, '--source-ip', A, '--entry', 'cluster:15500'], 1,
      /gateway: no agent "nosuch".*\[WARREN_E_NOT_FOUND\]$/);
    await refuse(['egress', 'create', 'x2', '--gateway', 'gw', '--target', `${EXTERNAL}:5432`, '--source-ip', '10.40.0.13', '--entry', 'cluster:15500'], 2,
      /^error: sourceIp: gateway "gw" does not own 10\.40\.0\.13 \(its --source-ip addresses: 10\.40\.0\.11,10\.40\.0\.12\)/);
    await refuse(['egress', 'create', 'x3', '--gateway', 'gw', '--target', `${EXTERNAL}:5432`, '--source-ip', A, '--entry', 'cluster:15432'], 1,
      /entry cluster:0\.0\.0\.0:15432 overlaps egress "pg-a".*\[WARREN_E_CONFLICT\]$/);
    // A port another program holds on the gateway: the gateway's bind fails, the rule is not kept.
    const holder = nat.lab.spawn('gateway', process.execPath, ['-e', `require('node:net').createServer().listen(9090, '${A}', () => console.log('listening'))`]);
    await waitForLine(holder, /^listening$/, { timeoutMs: 10_000, stream: 'stdout' });
    await refuse(['ingress', 'create', 'x4', '--gateway', 'gw', '--listen', `${A}:9090`, '--target', `${CLUSTER}:8080`], 1,
      /ingress rule "x4" not created: cannot listen on 10\.40\.0\.11:9090: the address is in use \[WARREN_E_LISTEN_FAILED\]$/);
    await refuse(['egress', 'create', 'x5', '--gateway', 'gw', '--target', 'nothostport', '--source-ip', A, '--entry', 'cluster:15500'], 2, /^error: --target "nothostport" is not HOST:PORT/);
    assert.equal((await rules('egress')).length + (await rules('ingress')).length, before, 'nothing half-created');

    // A gateway started with an address its host does not own stops at once and says so.
    const bad = nat.lab.spawn('gateway', process.execPath, [WARREN_BIN, 'agent', '--name', 'gw2', '--data-dir', '/nonexistent-gw2', '--source-ip', '10.40.0.99']);
    const exit = await waitForExit(bad, 10_000);
    assert.equal(exit.code, 1);
    await waitForLine(bad, /--source-ip 10\.40\.0\.99: not an address of this host \(add it first/, { timeoutMs: 1_000 });
  });

  it('an ExternalService document does what the commands did; get -o yaml gives it back; delete takes it away', async (t) => {
    const dir = tempDir('externalservice');
    const file = path.join(dir, 'ext.yaml');
    fs.writeFileSync(file, EXTERNAL_SERVICE);
    // Its ingress rule takes A:8080, where the command-made one listens.
    assert.equal((await warren(['ingress', 'rm', 'web-in'])).code, 0);

    const applied = await warren(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'externalservice/ext created (4 egress, 1 ingress rules)\n');
    const a = await psql(25432);
    assert.equal(a.stdout.trim(), A, a.stderr);
    assert.match((await psql(25433)).stderr, new RegExp(`FATAL: {2}no pg_hba\\.conf entry for host "${B.replaceAll('.', '\\.')}", user "app"`));
    for (const [port, ip] of [[28000, A], [28001, B]] as const) {
      assert.equal((await curl('cluster', `http://127.0.0.1:${port}/`)).stdout, 'external\n');
      await waitForLine(httpLog, new RegExp(`^client ${ip.replaceAll('.', '\\.')}$`), { timeoutMs: 5_000, stream: 'stdout' });
    }
    assert.equal((await curl('external', `http://${A}:8080/`)).stdout, 'web-in-cluster\n');
    const owned = [...(await rules('egress')), ...(await rules('ingress'))].filter((r) => r.owner === 'externalservice/ext').map((r) => [r.name, r.entry, r.sourceIp, r.listening]);
    assert.deepEqual(owned.sort(), [
      ['ext-e0-25432', 'cluster:0.0.0.0:25432', A, true], ['ext-e0-28000', 'cluster:0.0.0.0:28000', A, true],
      ['ext-e1-25432', 'cluster:0.0.0.0:25433', B, true], ['ext-e1-28000', 'cluster:0.0.0.0:28001', B, true],
      ['ext-i0-8080', `gw:${A}:8080`, A, true],
    ]);

    // Applying it again (from stdin) changes nothing; what get -o yaml prints is the document, and applies as unchanged.
    const again = await cli(hub, ['apply', '-f', '-'], { input: EXTERNAL_SERVICE });
    assert.equal(again.stdout, 'externalservice/ext unchanged (4 egress, 1 ingress rules)\n', again.stderr);
    const yaml = await warren(['get', 'externalservices', 'ext', '-o', 'yaml']);
    assert.equal(yaml.code, 0, yaml.stderr);
    const expected = YAML.parse(EXTERNAL_SERVICE);
    expected.spec.ports[1].protocol = 'TCP';
    assert.deepEqual(YAML.parse(yaml.stdout), expected);
    fs.writeFileSync(path.join(dir, 'back.yaml'), yaml.stdout);
    assert.equal((await warren(['apply', '-f', path.join(dir, 'back.yaml')])).stdout, 'externalservice/ext unchanged (4 egress, 1 ingress rules)\n');
    const table = await warren(['get', 'es']);
    assert.match(table.stdout, new RegExp(`\\next\\s+${EXTERNAL.replaceAll('.', '\\.')}\\s+cluster\\s+ns1/web=${A.replaceAll('.', '\\.')},ns2/web-client=${B.replaceAll('.', '\\.')}\\s+25432→5432/TCP,28000→8000/TCP\\s+5/5 listening\\s+-\\n`));

    // Bad input: exit 2, one line naming the document and field; nothing created.
    const before = (await rules('egress')).length + (await rules('ingress')).length;
    const refuse = async (text: string, message: RegExp) => {
      const bad = path.join(dir, 'bad.yaml');
      fs.writeFileSync(bad, text);
      const r = await warren(['apply', '-f', bad]);
      assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    };
    const other = EXTERNAL_SERVICE.replace('name: ext\n', 'name: ext2\n').replaceAll('targetPort: 2', 'targetPort: 3').replace('ports: [8080]', 'ports: [8090]');
    await refuse(`${other}---\nspec: [\n`, /^error: .*bad\.yaml: document 2 is not valid YAML: /);
    await refuse(other.replace('port: 8000\n', 'port: 8000\n      nodePort: 30000\n'), /^error: externalservice "ext2": spec\.ports\[1\]: unknown field "nodePort"\n$/);
    await refuse(other.replace('protocol: TCP', 'protocol: UDP'), /^error: externalservice "ext2": spec\.ports\[0\]\.protocol: only TCP is supported \(UDP is out of scope\)\n$/);
    await refuse(`${other}---\n${other.replace('name: ext2', 'name: ext3').replace(`sourceIP: ${B}`, 'sourceIP: 10.40.0.13')}`,
      /^error: externalservice "ext3": spec\.sources\[1\]\.sourceIP: no gateway agent owns 10\.40\.0\.13; start one on a host that has the address/);
    assert.equal((await rules('egress')).length + (await rules('ingress')).length, before, 'nothing half-created');
    assert.deepEqual((await cliJson<unknown[]>(hub, ['get', 'externalservices'])).length, 1);

    // Delete: new connections fail once the command returns.
    const started = performance.now();
    const rm = await warren(['delete', 'externalservice', 'ext']);
    const returned = performance.now();
    assert.equal(rm.stdout, 'externalservice/ext deleted\n', rm.stderr);
    assert.match((await psql(25432)).stderr, /Connection refused/);
    const gone = await curl('external', `http://${A}:8080/`);
    assert.match(gone.stderr, /Connection refused|Couldn't connect/);
    t.diagnostic(`delete externalservice: command ${Math.round(returned - started)} ms, refused ${Math.round(performance.now() - returned)} ms after it returned`);
    assert.equal((await rules('egress')).some((r) => r.owner !== null), false);
    const missing = await warren(['get', 'externalservice', 'ext']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no externalservice "ext"/);
  });
});

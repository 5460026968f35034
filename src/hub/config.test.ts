import { after, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { hubConfig } from './config.js';

const base = { dataDir: '/tmp/warren-hub-config-test' };

test('--max-handshakes defaults to 64 and takes a whole number', () => {
  assert.equal(hubConfig(base, {}).maxHandshakes, 64);
  assert.equal(hubConfig({ ...base, maxHandshakes: '500' }, {}).maxHandshakes, 500);
});

test('--max-handshakes rejects 0, negatives, fractions and words with WARREN_E_CONFIG naming the flag', () => {
  for (const bad of ['0', '-1', '1.5', 'many', '', '1000000']) {
    assert.throws(
      () => hubConfig({ ...base, maxHandshakes: bad }, {}),
      (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && err.message.includes('--max-handshakes') && err.message.includes(`"${bad}"`),
      bad,
    );
  }
});

test('--max-user-cert-ttl defaults to 7d and rejects what is not a duration, naming the flag', () => {
  assert.equal(hubConfig(base, {}).maxUserCertTtlMs, 7 * 86_400_000);
  assert.equal(hubConfig({ ...base, maxUserCertTtl: '12h' }, {}).maxUserCertTtlMs, 12 * 3_600_000);
  assert.throws(
    () => hubConfig({ ...base, maxUserCertTtl: 'forever' }, {}),
    (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && err.message.includes('--max-user-cert-ttl'),
  );
});

test('--max-pending-per-source defaults to 1024 and --client-hello-timeout to 3s; bad values name the flag', () => {
  const c = hubConfig(base, {});
  assert.equal(c.maxPendingPerSource, 1024);
  assert.equal(c.clientHelloTimeoutMs, 3_000);
  assert.equal(hubConfig({ ...base, maxPendingPerSource: '4', clientHelloTimeout: '500ms' }, {}).clientHelloTimeoutMs, 500);
  for (const [flags, flag] of [[{ maxPendingPerSource: '0' }, '--max-pending-per-source'], [{ clientHelloTimeout: 'soon' }, '--client-hello-timeout']] as const) {
    assert.throws(() => hubConfig({ ...base, ...flags }, {}), (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && err.message.includes(flag), flag);
  }
});

const configError = (flag: RegExp) => (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && flag.test(err.message);

test('--jwt-public-key: expiring tokens of at most 24h, jwt: names, kube door only, unless flags say otherwise', () => {
  assert.equal(hubConfig(base, {}).jwt, undefined);
  assert.deepEqual(hubConfig({ ...base, jwtPublicKey: 'issuer.pem' }, {}).jwt, {
    publicKeyFile: 'issuer.pem', maxTtlMs: 86_400_000, issuer: undefined, audience: undefined, trustNames: false, doors: ['kube'],
  });
  assert.deepEqual(
    hubConfig({ ...base, jwtPublicKey: 'issuer.pem', jwtMaxTtl: '1h', jwtIssuer: 'https://sso', jwtAudience: 'warren', jwtTrustNames: true, jwtDoors: 'kube, connect,SOCKS,socks5,api' }, {}).jwt,
    { publicKeyFile: 'issuer.pem', maxTtlMs: 3_600_000, issuer: 'https://sso', audience: 'warren', trustNames: true, doors: ['kube', 'connect', 'socks5', 'api'] },
  );
});

test('--jwt-… flags without --jwt-public-key, unknown doors and bad durations fail at start-up', () => {
  assert.throws(() => hubConfig({ ...base, jwtIssuer: 'https://sso' }, {}), configError(/^--jwt-issuer without --jwt-public-key/));
  assert.throws(() => hubConfig({ ...base, jwtDoors: 'kube,connect', jwtTrustNames: true }, {}), configError(/^--jwt-trust-names, --jwt-doors without --jwt-public-key/));
  assert.throws(() => hubConfig({ ...base, jwtMaxTtl: '1h' }, {}), configError(/--jwt-max-ttl without --jwt-public-key/));
  assert.throws(() => hubConfig({ ...base, jwtAudience: 'warren' }, {}), configError(/--jwt-audience without --jwt-public-key/));
  for (const doors of ['uds', 'forward', 'kube,ssh', '', 'kube,']) {
    assert.throws(() => hubConfig({ ...base, jwtPublicKey: 'k.pem', jwtDoors: doors }, {}), configError(/--jwt-doors: ".*" is not a door that takes tokens; use a comma list of kube, connect, socks5, socks, api/), doors);
  }
  assert.throws(() => hubConfig({ ...base, jwtPublicKey: 'k.pem', jwtMaxTtl: 'forever' }, {}), configError(/--jwt-max-ttl: "forever" is not a duration/));
  assert.throws(() => hubConfig({ ...base, jwtPublicKey: 'k.pem', jwtIssuer: '' }, {}), configError(/--jwt-issuer must not be empty/));
});

test('--store postgres://: the password from PGPASSWORD or --store-password-file (which wins), never echoed in errors', () => {
  const url = 'postgres://warren@db.example:5432/warren';
  assert.deepEqual(hubConfig({ ...base, store: url }, {}).store, { kind: 'postgres', url });
  assert.deepEqual(hubConfig({ ...base, store: url }, { PGPASSWORD: 'pw1' }).store, { kind: 'postgres', url, password: 'pw1' });
  assert.deepEqual(hubConfig(base, { WARREN_STORE: url }).store, { kind: 'postgres', url });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-pgpw-')), 'pw');
  fs.writeFileSync(file, 'pw2\n');
  assert.deepEqual(hubConfig({ ...base, store: url, storePasswordFile: file }, { PGPASSWORD: 'pw1' }).store, { kind: 'postgres', url, password: 'pw2' });
  const refused = (flags: Parameters<typeof hubConfig>[0], what: RegExp) =>
    assert.throws(() => hubConfig({ ...base, ...flags }, {}), (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_CONFIG' && what.test(err.message) && !err.message.includes('s3cret'));
  refused({ store: url, storePasswordFile: `${file}.missing` }, /--store-password-file .*ENOENT/);
  refused({ storePasswordFile: file }, /--store-password-file goes with --store postgres/);
  refused({ store: 'mysql://u:s3cret@h/db' }, /--store must be sqlite:PATH or postgres/);
  refused({ store: 'postgres://u:s3cret@[bad/db' }, /is not a URL/);
});

describe('--config FILE', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-hub-config-file-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('a good file sets the options its keys name, in the same form as the flags', () => {
    const config = write('good.yaml', [
      'listen: 127.0.0.1:0',
      `data-dir: ${dir}/data`,
      'public-url: https://hub.example.com:8443/',
      'tls-san: [hub.example.com, 10.0.0.5]',
      'max-handshakes: 128',
      'ping-interval: 5s',
      'demo: true',
      'jwt-public-key: issuer.pem',
      'jwt-doors: kube,connect',
      '',
    ].join('\n'));
    const c = hubConfig({ config }, {});
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 0 });
    assert.equal(c.dataDir, path.join(dir, 'data'));
    assert.deepEqual(c.store, { kind: 'sqlite', path: path.join(dir, 'data', 'warren.db') });
    assert.equal(c.publicUrl, 'https://hub.example.com:8443');
    assert.deepEqual(c.tlsSans, ['hub.example.com', '10.0.0.5']);
    assert.equal(c.maxHandshakes, 128);
    assert.equal(c.pingIntervalMs, 5_000);
    assert.equal(c.demo, true);
    assert.deepEqual(c.jwt?.doors, ['kube', 'connect']);
    assert.equal(c.maxPendingPerSource, 1024, 'what the file leaves out keeps its default');
  });

  it('flags given on the command line and WARREN_LOG_LEVEL override the file', () => {
    const config = write('override.yaml', 'max-handshakes: 128\nlog-level: warn\n');
    assert.equal(hubConfig({ config, maxHandshakes: '7' }, {}).maxHandshakes, 7);
    assert.equal(hubConfig({ config }, { WARREN_LOG_LEVEL: 'debug' }).logLevel, 'debug');
    assert.equal(hubConfig({ config }, {}).logLevel, 'warn');
  });

  it('an unknown key is refused, naming it', () => {
    const config = write('unknown.yaml', 'listen: 127.0.0.1:0\nmax-handshake: 10\nconfig: other.yaml\n');
    assert.throws(() => hubConfig({ config }, {}), configError(/unknown\.yaml: unknown key "max-handshake".*unknown key "config"/));
  });

  it('a bad value names the key and the file; contradictions fail as they do with flags', () => {
    assert.throws(() => hubConfig({ config: write('bad.yaml', 'max-handshakes: 0\n') }, {}), configError(/bad\.yaml: max-handshakes: "0" is not a whole number from 1 to 999999/));
    assert.throws(() => hubConfig({ config: write('url.yaml', 'public-url: http://hub\n') }, {}), configError(/url\.yaml: public-url must be an https:\/\/ URL/));
    assert.throws(() => hubConfig({ config: write('tls.yaml', 'tls-cert: hub.crt\n') }, {}), configError(/--tls-cert and --tls-key go together/));
    assert.throws(() => hubConfig({ config: path.join(dir, 'missing.yaml') }, {}), configError(/--config .*missing\.yaml: ENOENT/));
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHostPort, formatHostPort, formatSource, isLabel, parseListen } from './hostPort.js';
import { parseDuration } from './duration.js';

test('parseHostPort: the target grammar', () => {
  const ok: Array<[string, string, number]> = [
    ['node1:22', 'node1', 22],
    ['Node1.Example.COM:443', 'node1.example.com', 443],
    ['10.20.0.5:8080', '10.20.0.5', 8080],
    ['[fd00::1]:22', 'fd00::1', 22],
    ['[FD00:0:0::1]:22', 'fd00::1', 22],
    ['db.prod.svc.cluster.local.alpha.warren:5432', 'db.prod.svc.cluster.local.alpha.warren', 5432],
    ['_sip._tcp.example:5060', '_sip._tcp.example', 5060],
  ];
  for (const [text, host, port] of ok) assert.deepEqual(parseHostPort(text), { host, port }, text);
  for (const bad of ['node1', 'node1:0', 'node1:65536', ':22', 'fd00::1:22', '[notip]:22', 'a b:22', 'x'.repeat(300) + ':1', 'host:-1', 'host:22x', '-bad:22']) {
    assert.equal(parseHostPort(bad), undefined, bad);
  }
  assert.equal(formatHostPort({ host: 'fd00::1', port: 22 }), '[fd00::1]:22');
});

test('parseHostPort: malformed authorities are refused, never thrown on (regression: a zone id was a 500)', () => {
  const bad: Array<[string, string]> = [
    ['[fe80::1%25eth0]:22', 'zone id, percent-encoded as in a URI'],
    ['[fe80::1%eth0]:22', 'zone id'],
    ['[fe80::1%]:22', 'empty zone id'],
    ['[::1]', 'no port'],
    ['[]:22', 'empty IPv6 host'],
    [':22', 'empty host'],
    ['db%2Eprod:5432', 'percent-encoded dot'],
    ['%E0:22', 'bad percent-encoding'],
    ['node1%00:22', 'percent-encoded NUL'],
    ['node1:0', 'port 0'],
    ['node1:65536', 'port above 65535'],
    ['node1:99999999999', 'port far out of range'],
    ['node1:', 'empty port'],
    ['[1.2.3.4]:22', 'IPv4 in brackets'],
    ['node1:22:33', 'two ports'],
    ['user@node1:22', 'userinfo'],
  ];
  for (const [text, why] of bad) assert.equal(parseHostPort(text), undefined, `${why}: ${text}`);
});

/** The source the server side of one real connection to `listen` reports, and the client's own address. */
async function sourceSeenBy(listen: net.ListenOptions): Promise<{ source: string; client: net.AddressInfo | Record<string, never> }> {
  const server = net.createServer();
  server.listen(listen);
  await once(server, 'listening');
  const address = server.address();
  const client = typeof address === 'string' ? net.connect(address) : net.connect(address!.port, address!.address);
  try {
    const [accepted] = (await once(server, 'connection')) as [net.Socket];
    const source = formatSource(accepted);
    accepted.destroy();
    if (client.connecting) await once(client, 'connect');
    return { source, client: client.address() as net.AddressInfo | Record<string, never> };
  } finally {
    client.destroy();
    server.close();
  }
}

test('formatSource: one spelling of a peer for every door and tunnel', async () => {
  const v4 = await sourceSeenBy({ port: 0, host: '127.0.0.1' });
  assert.equal(v4.source, `127.0.0.1:${String(v4.client.port)}`);
  const v6 = await sourceSeenBy({ port: 0, host: '::1' });
  assert.equal(v6.source, `[::1]:${String(v6.client.port)}`);
  const dir = mkdtempSync(join(tmpdir(), 'warren-source-'));
  try {
    assert.equal((await sourceSeenBy({ path: join(dir, 's.sock') })).source, 'unix');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // regression: a socket without a peer was spelled `undefined:undefined`
  assert.equal(formatSource(new net.Socket()), 'unknown');
});

test('isLabel: RFC 1123 agent names', () => {
  for (const n of ['a', 'node1', 'site-1', 'x'.repeat(63)]) assert.ok(isLabel(n), n);
  for (const n of ['', 'Node', '-a', 'a-', 'a.b', 'x'.repeat(64), 'a_b']) assert.ok(!isLabel(n), n);
});

test('parseListen: flags people write', () => {
  assert.deepEqual(parseListen('8443'), { host: '0.0.0.0', port: 8443 });
  assert.deepEqual(parseListen(':0'), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('[::1]:9'), { host: '::1', port: 9 });
  assert.equal(parseListen('host:99999'), undefined);
});

test('parseDuration', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('30'), 30_000);
  for (const bad of ['', 'h', '1x', '1h 2m', '-1s']) assert.equal(parseDuration(bad), undefined, bad);
});

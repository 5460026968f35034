/**
 * Certificate admission, first on subjects as Node reports them, then over real mTLS handshakes with
 * certificates the hub's PKI issues (and one from a CA the hub does not know).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { createCa, createCsr, issueAgentCert, issueHubPeerCert, issueServerCert, issueUserCert, loadCa } from '../pki/pki.js';
import { admitAgent, certIdentity, claimedName, verifiedHubPeer, verifiedPeer } from './peerCertificate.js';

test('certIdentity reads the two kinds of certificate the hub issues', () => {
  assert.deepEqual(certIdentity({ subject: { CN: 'alpha', OU: 'warren-agent' }, serialNumber: '00AB01' }), {
    kind: 'agent', name: 'alpha', serial: 'ab01', groups: [],
  });
  assert.deepEqual(certIdentity({ subject: { CN: 'ana', O: ['ops', 'dev'], OU: 'warren-user' }, serialNumber: '7F' }), {
    kind: 'user', name: 'ana', serial: '7f', groups: ['ops', 'dev'],
  });
  assert.deepEqual(certIdentity({ subject: { CN: 'bo', O: 'ops', OU: ['warren-user'] }, serialNumber: '1' })?.groups, ['ops']);
});

test('certIdentity finds no identity in anything else', () => {
  const cases: Array<[string, { subject?: unknown; serialNumber: string }]> = [
    ['no subject', { serialNumber: '1' }],
    ['a null subject', { subject: null, serialNumber: '1' }],
    ['the hub serving certificate', { subject: { CN: 'warren-hub' }, serialNumber: '1' }],
    ['an agent OU without a CN', { subject: { OU: 'warren-agent' }, serialNumber: '1' }],
    ['an agent certificate with two CNs', { subject: { CN: ['a', 'b'], OU: 'warren-agent' }, serialNumber: '1' }],
    ['an agent OU among others', { subject: { CN: 'a', OU: ['warren-agent', 'x'] }, serialNumber: '1' }],
    ['a user OU without a CN', { subject: { OU: 'warren-user' }, serialNumber: '1' }],
    ['another OU', { subject: { CN: 'a', OU: 'warren-admin' }, serialNumber: '1' }],
    ['no serial', { subject: { CN: 'a', OU: 'warren-agent' }, serialNumber: undefined as unknown as string }],
  ];
  for (const [name, cert] of cases) assert.equal(certIdentity(cert), undefined, name);
});

const caPair = await createCa('peer certificate test CA');
const ca = await loadCa(caPair);
const serving = await issueServerCert(ca, ['127.0.0.1']);
const strangerCa = await loadCa(await createCa('some other CA'));

async function clientCert(issuer: typeof ca, kind: 'agent' | 'user', name: string) {
  const { csrPem, keyPem } = await createCsr(name);
  const issued = kind === 'agent' ? await issueAgentCert(issuer, csrPem, name, 1) : await issueUserCert(issuer, csrPem, name, ['ops'], 1);
  return { certPem: issued.certPem, keyPem, serial: issued.serial };
}

/** The hub end of a real mTLS handshake with a client presenting `cert` (or none). */
async function handshake(t: TestContext, cert?: { certPem: string; keyPem: string }): Promise<tls.TLSSocket> {
  const server = tls.createServer({ key: serving.keyPem, cert: serving.certPem, ca: [caPair.certPem], requestCert: true, rejectUnauthorized: false });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const client = tls.connect({
    host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ca: [caPair.certPem],
    ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
  });
  client.on('error', () => undefined);
  const [socket] = await accepted;
  t.after(() => (client.destroy(), socket.destroy(), server.close()));
  return socket;
}

test('an agent certificate on record is admitted under its name', async (t) => {
  const cert = await clientCert(ca, 'agent', 'alpha');
  const socket = await handshake(t, cert);
  const record = { certSerial: cert.serial, authority: 'x' };
  const admitted = await admitAgent(socket, async (name) => (name === 'alpha' ? record : undefined));
  assert.equal(admitted.name, 'alpha');
  assert.equal(admitted.record, record);
  assert.deepEqual(verifiedPeer(socket), { kind: 'agent', name: 'alpha', serial: cert.serial, groups: [] });
});

test('agent admission refuses, with WARREN_E_AGENT_REVOKED and the reason, every other peer', async (t) => {
  const agent = await clientCert(ca, 'agent', 'alpha');
  const user = await clientCert(ca, 'user', 'ana');
  const stranger = await clientCert(strangerCa, 'agent', 'alpha');
  const onRecord = async () => ({ certSerial: agent.serial });
  const cases: Array<[string, tls.TLSSocket, (n: string) => Promise<{ certSerial: string } | undefined>, RegExp]> = [
    ['no certificate', await handshake(t), onRecord, /missing or not signed by this hub/],
    ['a certificate from another CA', await handshake(t, stranger), onRecord, /missing or not signed by this hub/],
    ['a user certificate', await handshake(t, user), onRecord, /not an agent certificate/],
    ['an agent that was removed', await handshake(t, agent), async () => undefined, /agent "alpha" was removed or its certificate replaced/],
    ['a replaced certificate', await handshake(t, agent), async () => ({ certSerial: 'ff' }), /agent "alpha" was removed or its certificate replaced/],
  ];
  for (const [name, socket, lookup, message] of cases) {
    await assert.rejects(admitAgent(socket, lookup), (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_AGENT_REVOKED' && message.test(err.message), name);
  }
});

test('a user certificate is a verified user with its groups; an unverified one is nobody but still has a claimed name', async (t) => {
  const socket = await handshake(t, await clientCert(ca, 'user', 'ana'));
  assert.deepEqual(verifiedPeer(socket), { kind: 'user', name: 'ana', serial: verifiedPeer(socket)?.serial, groups: ['ops'] });
  const stranger = await handshake(t, await clientCert(strangerCa, 'agent', 'mallory'));
  assert.equal(verifiedPeer(stranger), undefined);
  assert.equal(claimedName(stranger), 'mallory');
  assert.equal(claimedName(await handshake(t)), undefined);
});

test('only a hub-peer certificate from the hub CA is a hub; agents, users, serving certificates and strangers are not', async (t) => {
  const hub = await handshake(t, await issueHubPeerCert(ca, 'h-1a2b'));
  assert.equal(verifiedHubPeer(hub), 'h-1a2b');
  // A hub peer is no agent and no user either.
  assert.equal(verifiedPeer(hub), undefined);
  await assert.rejects(admitAgent(hub, async () => undefined), /not an agent certificate/);
  const others: Array<[string, { certPem: string; keyPem: string } | undefined]> = [
    ['an agent certificate', await clientCert(ca, 'agent', 'h-1a2b')],
    ['a user certificate', await clientCert(ca, 'user', 'h-1a2b')],
    ['a hub-peer certificate from another CA', await issueHubPeerCert(strangerCa, 'h-1a2b')],
    ['no certificate', undefined],
  ];
  for (const [name, cert] of others) assert.equal(verifiedHubPeer(await handshake(t, cert)), undefined, name);
});

/**
 * Warren's PKI checked the way it is used: certificates from one CA verify in a real TLS handshake
 * (the server's for the client, the agent's and user's for the server); another CA's do not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlsPair } from '../../test/support/tlsPair.js';
import { AGENT_OU, USER_OU, certSans, createCa, createCsr, fingerprint, issueAgentCert, issueServerCert, issueUserCert, loadCa } from './pki.js';

const caPair = await createCa('pki test CA');
const ca = await loadCa(caPair);
const serving = await issueServerCert(ca, ['127.0.0.1', 'hub.example']);

async function clientCert(kind: 'agent' | 'user', csrName = 'whatever') {
  const { csrPem, keyPem } = await createCsr(csrName);
  const issued = kind === 'agent' ? await issueAgentCert(ca, csrPem, 'alpha', 1) : await issueUserCert(ca, csrPem, 'ana', ['ops', 'dev'], 1);
  return { certPem: issued.certPem, keyPem };
}

test('the serving certificate names its SANs and verifies for a client that trusts only the CA', async () => {
  assert.deepEqual(certSans(serving.certPem).sort(), ['127.0.0.1', 'hub.example']);
  const { client } = await tlsPair({ caPem: caPair.certPem, server: serving });
  assert.equal(client.authorized, true, String(client.authorizationError));
  assert.match(fingerprint(caPair.certPem), /^sha256:[0-9a-f]{64}$/);
});

test('an agent certificate verifies at the server and names the authorised agent, not the CSR subject', async () => {
  const { server } = await tlsPair({ caPem: caPair.certPem, server: serving, client: await clientCert('agent', 'evil') });
  assert.equal(server.authorized, true, String(server.authorizationError));
  const subject = server.getPeerCertificate().subject as unknown as Record<string, string>;
  assert.equal(subject.CN, 'alpha');
  assert.equal(subject.OU, AGENT_OU);
});

test('a user certificate carries the user and its groups', async () => {
  const { server } = await tlsPair({ caPem: caPair.certPem, server: serving, client: await clientCert('user') });
  assert.equal(server.authorized, true, String(server.authorizationError));
  const subject = server.getPeerCertificate().subject as unknown as Record<string, string | string[]>;
  assert.deepEqual([subject.CN, subject.O, subject.OU], ['ana', ['ops', 'dev'], USER_OU]);
});

test("another CA's agent certificate does not verify", async () => {
  const other = await loadCa(await createCa('another CA'));
  const { csrPem, keyPem } = await createCsr('alpha');
  const foreign = await issueAgentCert(other, csrPem, 'alpha', 1);
  const { server } = await tlsPair({ caPem: caPair.certPem, server: serving, client: { certPem: foreign.certPem, keyPem } });
  assert.equal(server.authorized, false);
});

test('a CSR that is not PKCS#10 is refused', async () => {
  await assert.rejects(issueAgentCert(ca, 'not a csr', 'alpha', 1), /CSR is not a PEM PKCS#10 request/);
});

// Client certificates at the hub's API, against a real hub process: an agent renews its certificate
// over mTLS with the current one (and the replaced one is locked out), a user certificate is a user
// with its groups and never an agent, and an agent certificate is never a user.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dataDirStore, enroll, type AgentIdentity } from '../../src/agent/identity.js';
import { hubRequest, type HubResponse } from '../../src/client/hubHttp.js';
import { certSerial, createCsr } from '../../src/pki/pki.js';
import { ChildGroup } from '../support/proc.js';
import { cli, joinToken, startHub, tempDir, type HubProc } from '../support/warren.js';

describe('client certificates at the API: agent renewal, user certificates', () => {
  const procs = new ChildGroup();
  const dir = tempDir('cert-identity');
  let hub: HubProc;
  let first: AgentIdentity;
  let user: { certPem: string; keyPem: string };

  before(async () => {
    hub = await startHub({ group: procs });
    first = await enroll({ token: await joinToken(hub), name: 'r1', labels: {}, store: dataDirStore(path.join(dir, 'agent')) });
    const prefix = path.join(dir, 'ci');
    const made = await cli(hub, ['user-cert', 'create', '--user', 'ci', '--groups', 'deploy', '--ttl', '1h', '--out', prefix]);
    assert.equal(made.code, 0, made.stderr);
    user = { certPem: fs.readFileSync(`${prefix}.crt`, 'utf8'), keyPem: fs.readFileSync(`${prefix}.key`, 'utf8') };
  });
  after(async () => {
    await procs.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, p: string, cert?: { certPem: string; keyPem: string }, body?: unknown): Promise<HubResponse> =>
    hubRequest({ url: new URL(hub.url), ca: first.caPem, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) }, method, p, body === undefined ? {} : { body });
  const json = (r: HubResponse) => JSON.parse(r.body.toString('utf8')) as { code?: string; message?: string; certPem?: string; user?: string; groups?: string[]; via?: string };
  const csr = () => createCsr('r1');

  it('an agent renews with its current certificate; the replaced one cannot renew again', async () => {
    const next = await csr();
    const renewed = await call('POST', '/api/v1/renew', first, { csr: next.csrPem });
    assert.equal(renewed.status, 200, renewed.body.toString());
    const certPem = json(renewed).certPem!;
    assert.notEqual(certSerial(certPem), certSerial(first.certPem));
    const again = await call('POST', '/api/v1/renew', first, { csr: (await csr()).csrPem });
    assert.equal(again.status, 403);
    assert.equal(json(again).code, 'WARREN_E_AGENT_REVOKED');
    const withNew = await call('POST', '/api/v1/renew', { certPem, keyPem: next.keyPem }, { csr: (await csr()).csrPem });
    assert.equal(withNew.status, 200, withNew.body.toString());
  });

  it('renewal without a certificate, or with a user certificate, is unauthenticated', async () => {
    const none = await call('POST', '/api/v1/renew', undefined, { csr: 'x' });
    assert.equal(none.status, 401);
    assert.match(json(none).message!, /needs the agent client certificate/);
    const asUser = await call('POST', '/api/v1/renew', user, { csr: 'x' });
    assert.equal(asUser.status, 401);
    assert.match(json(asUser).message!, /not an agent certificate/);
  });

  it('a user certificate is its user with its groups; an agent certificate is no user', async () => {
    const me = await call('GET', '/api/v1/whoami', user);
    assert.equal(me.status, 200, me.body.toString());
    assert.deepEqual({ user: json(me).user, groups: json(me).groups, via: json(me).via }, { user: 'ci', groups: ['deploy'], via: 'cert' });
    const agentAsUser = await call('GET', '/api/v1/whoami', first);
    assert.equal(agentAsUser.status, 401);
  });
});

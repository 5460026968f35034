// The member cluster's credentials as the agent applies them, against the kube-apiserver stand-in:
// a kubeconfig token with the CA inline, an exec plugin (client.authentication.k8s.io/v1), a kubeconfig
// context chosen by name, and the start-up refusals.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { startFakeApiserver, type FakeApiserver } from '../../../test/support/kube/apiserver.js';
import { KubeCredentials } from './credentials.js';

function getWith(creds: Awaited<ReturnType<KubeCredentials['current']>>, urlPath: string, as: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      agent: creds.agent, hostname: creds.base.hostname, port: creds.base.port, path: urlPath,
      headers: { authorization: creds.authorization!, 'impersonate-user': as },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('KubeCredentials', () => {
  let api: FakeApiserver;
  let dir: string;
  before(async () => {
    api = await startFakeApiserver();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-creds-'));
  });
  after(async () => {
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('applies a kubeconfig token and CA, and reuses one connection pool', async () => {
    const creds = await KubeCredentials.load({ kind: 'kubeconfig', path: write('token.yaml', api.kubeconfig('agent')) });
    const c = await creds.current();
    assert.equal(c.base.origin, api.url);
    assert.equal(c.authorization, `Bearer ${api.tokens.agent}`);
    assert.equal(await getWith(c, '/api/v1/namespaces/team-a/pods', 'dev'), 200);
    assert.equal(await getWith(c, '/api/v1/namespaces', 'dev'), 403, 'the member judges the impersonated user');
    creds.invalidate();
    assert.equal((await creds.current()).agent, c.agent, 'unchanged TLS material keeps the pool (and its kept-alive connections)');
    creds.close();
  });

  it('runs an exec plugin for the token', async () => {
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: api.tokens.agent } });
    const plugin = write('plugin.mjs', `process.stdout.write(${JSON.stringify(credential)});\n`);
    const config = YAML.parse(api.kubeconfig('agent')) as { users: { name: string; user: Record<string, unknown> }[] };
    config.users[0]!.user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } };
    const creds = await KubeCredentials.load({ kind: 'kubeconfig', path: write('exec.yaml', YAML.stringify(config)) });
    const c = await creds.current();
    assert.equal(c.authorization, `Bearer ${api.tokens.agent}`);
    assert.equal(await getWith(c, '/api/v1/namespaces/team-a/pods', 'dev'), 200);
    creds.close();
  });

  it('picks --kube-context, and refuses what cannot work at start-up', async () => {
    const config = YAML.parse(api.kubeconfig('agent')) as Record<string, unknown[]> & { contexts: { name: string; context: Record<string, string> }[] };
    config.contexts.push({ name: 'other', context: { cluster: 'standin', user: 'standin-user', namespace: 'x' } });
    config['current-context'] = 'missing' as never;
    const file = write('ctx.yaml', YAML.stringify(config));
    const creds = await KubeCredentials.load({ kind: 'kubeconfig', path: file, context: 'other' });
    assert.equal(creds.server.origin, api.url);
    creds.close();
    await assert.rejects(KubeCredentials.load({ kind: 'kubeconfig', path: file }), /current context names no cluster or no user/);
    await assert.rejects(KubeCredentials.load({ kind: 'kubeconfig', path: write('garbage.yaml', ': : :') }), /WARREN_E_CONFIG|cannot load/);
    const missingCa = YAML.parse(api.kubeconfig('agent')) as { clusters: { cluster: Record<string, unknown> }[] };
    missingCa.clusters[0]!.cluster = { server: api.url, 'certificate-authority': path.join(dir, 'nope.crt') };
    await assert.rejects(KubeCredentials.load({ kind: 'kubeconfig', path: write('noca.yaml', YAML.stringify(missingCa)) }), /cannot apply the credentials/);
  });
});

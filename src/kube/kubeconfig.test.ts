import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeconfigYaml } from './kubeconfig.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

test('one context per cluster, the hub CA embedded, one user with the token; client-node reads it', () => {
  const text = kubeconfigYaml({ hubUrl: 'https://hub.example.com:8443/', caPem: CA, clusters: ['alpha', 'beta'], user: 'dev', token: 'T0K3N' });
  const kc = new KubeConfig();
  kc.loadFromString(text);
  assert.deepEqual(kc.getContexts().map((c) => c.name), ['alpha', 'beta']);
  assert.equal(kc.getCurrentContext(), 'alpha');
  assert.equal(kc.getCurrentCluster()?.server, 'https://hub.example.com:8443/k8s/clusters/alpha');
  assert.equal(Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString(), CA);
  assert.equal(kc.getCurrentUser()?.token, 'T0K3N');
  kc.setCurrentContext('beta');
  assert.equal(kc.getCurrentCluster()?.server, 'https://hub.example.com:8443/k8s/clusters/beta');
});

test('a prefix and a namespace', () => {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml({ hubUrl: 'https://h', caPem: CA, clusters: ['a'], user: 'u', token: 't', contextPrefix: 'w-', namespace: 'team-a' }));
  assert.equal(kc.getCurrentContext(), 'w-a');
  assert.equal(kc.getContextObject('w-a')?.namespace, 'team-a');
});

test('no clusters is a usage error', () => {
  assert.throws(() => kubeconfigYaml({ hubUrl: 'https://h', caPem: CA, clusters: [], user: 'u', token: 't' }), /no clusters/);
});

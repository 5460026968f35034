import assert from 'node:assert/strict';
import { test } from 'node:test';
import YAML from 'yaml';
import { WarrenError } from './errors.js';
import { formatExternalServices, formatPath, parseExternalServices } from './externalService.js';

/** The seed's example, with the entry agent named. */
const SEED = `
apiVersion: externalservice.example.com/v1alpha1
kind: ExternalService
metadata:
  name: my-external-service1
  annotations:
    warren.dev/entry-agent: cluster
spec:
  targetIP: 192.168.122.139
  sources:
    - service:
        namespace: ns1
        name: my-service1
      sourceIP: 192.168.122.200
    - service:
        namespace: ns2
        name: my-service2
      sourceIP: 192.168.122.201
  ports:
    - protocol: TCP
      port: 8000
      targetPort: 8000
`;

function refusal(text: string): string {
  try {
    parseExternalServices(text, 'es.yaml');
  } catch (err) {
    assert.ok(err instanceof WarrenError);
    assert.equal(err.code, 'WARREN_E_BAD_REQUEST');
    return err.message;
  }
  assert.fail('accepted');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed YAML document, changed in place to make it wrong
type Doc = any;

/** The seed's document with one change made to its parsed form. */
function seedWith(change: (doc: Doc) => void): string {
  const doc: Doc = YAML.parse(SEED);
  change(doc);
  return YAML.stringify(doc);
}

test("the seed's ExternalService parses; protocol defaults to TCP", () => {
  const [doc] = parseExternalServices(SEED, 'es.yaml');
  assert.equal(doc!.metadata.name, 'my-external-service1');
  assert.deepEqual(doc!.spec.sources.map((s) => [s.service.namespace, s.service.name, s.sourceIP]), [
    ['ns1', 'my-service1', '192.168.122.200'], ['ns2', 'my-service2', '192.168.122.201'],
  ]);
  const [noProtocol] = parseExternalServices(seedWith((d) => delete d.spec.ports[0].protocol), 'es.yaml');
  assert.equal(noProtocol!.spec.ports[0]!.protocol, 'TCP');
});

test('several documents, and a list document, each count; empty documents are skipped', () => {
  const second = seedWith((d) => (d.metadata.name = 'second'));
  assert.deepEqual(parseExternalServices(`${SEED}\n---\n---\n${second}`, 'x').map((d) => d.metadata.name), ['my-external-service1', 'second']);
  const list = JSON.stringify([YAML.parse(SEED), YAML.parse(second)]);
  assert.deepEqual(parseExternalServices(list, 'x').map((d) => d.metadata.name), ['my-external-service1', 'second']);
});

test('the YAML it formats parses back to the same documents', () => {
  const docs = parseExternalServices(`${SEED}---\n${seedWith((d) => (d.metadata.name = 'b'))}`, 'x');
  assert.deepEqual(parseExternalServices(formatExternalServices(docs), 'x'), docs);
});

test('bad documents are refused naming the document and the field', () => {
  assert.equal(refusal(seedWith((d) => (d.spec.ports[0].protocol = 'UDP'))), 'externalservice "my-external-service1": spec.ports[0].protocol: only TCP is supported (UDP is out of scope)');
  assert.equal(refusal(seedWith((d) => (d.spec.sources[1].sourceIp = '1.2.3.4'))), 'externalservice "my-external-service1": spec.sources[1]: unknown field "sourceIp"');
  assert.equal(refusal(seedWith((d) => (d.spec.targetIP = 'db.example'))), 'externalservice "my-external-service1": spec.targetIP: not an IP address');
  assert.equal(refusal(seedWith((d) => (d.spec.ports[0].port = 70000))), 'externalservice "my-external-service1": spec.ports[0].port: a port number (1-65535)');
  assert.equal(refusal(seedWith((d) => (d.spec.sources = []))), 'externalservice "my-external-service1": spec.sources: at least one source');
  assert.equal(refusal(seedWith((d) => (d.kind = 'Deployment'))), 'externalservice "my-external-service1": kind: warren apply takes kind ExternalService');
  assert.match(refusal(seedWith((d) => delete d.metadata.annotations)), /^externalservice "my-external-service1": metadata\.annotations\["warren\.dev\/entry-agent"\]: missing: name the agent/);
  assert.match(refusal(seedWith((d) => (d.metadata.name = 'Not_A_Label'))), /^externalservice "Not_A_Label": metadata\.name: an RFC 1123 label/);
  assert.match(refusal(seedWith((d) => delete d.metadata.name)), /^document 1: metadata\.name: /);
  assert.equal(refusal(`${SEED}---\n${SEED}`), 'externalservice "my-external-service1" is given twice');
});

test('malformed YAML and empty input are refused with where', () => {
  assert.match(refusal(`${SEED}---\nspec: [\n`), /^es\.yaml: document 2 is not valid YAML: .* at line \d+, column \d+/);
  assert.equal(refusal('# nothing\n'), 'es.yaml holds no ExternalService document');
});

test('field paths read like the YAML', () => {
  assert.equal(formatPath(['spec', 'ports', 0, 'protocol']), 'spec.ports[0].protocol');
  assert.equal(formatPath(['metadata', 'annotations', 'warren.dev/entry-agent']), 'metadata.annotations["warren.dev/entry-agent"]');
});

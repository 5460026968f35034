/**
 * The `ExternalService` object of `warren apply -f` (k8s-ext-connector's API), shared by the CLI, which
 * reads the YAML and refuses a bad document before anything is sent (exit 2), and the hub API, which
 * validates again with the same schema (it trusts no client):
 *
 *   apiVersion: externalservice.example.com/v1alpha1     # or warren.dev/v1alpha1
 *   kind: ExternalService
 *   metadata:
 *     name: db                                           # RFC 1123 label, at most 50 characters
 *     annotations:
 *       warren.dev/entry-agent: cluster                  # the agent in the sources' cluster (required)
 *   spec:
 *     targetIP: 10.40.0.2
 *     sources:
 *       - service: {namespace: ns1, name: app1, ports: [8080]}   # ports: optional, the way back
 *         sourceIP: 10.40.0.11
 *     ports:
 *       - {protocol: TCP, port: 5432, targetPort: 25432}
 *
 * Only TCP is carried (UDP is out of scope). Unknown fields are refused, so a typo is not silently
 * ignored. How a document becomes egress and ingress rules: hub/externalServices.ts.
 */
import net from 'node:net';
import YAML from 'yaml';
import { z } from 'zod';
import { WarrenError } from './errors.js';
import { ENTRY_AGENT_ANNOTATION } from './forwardSpec.js';

export const API_VERSIONS = ['externalservice.example.com/v1alpha1', 'warren.dev/v1alpha1'] as const;
/** Room left in a 63-character rule name for `-e99-65535`. */
export const MAX_NAME = 50;
export const MAX_SOURCES = 100;
export const MAX_PORTS = 100;
/** Documents in one `warren apply`. */
export const MAX_DOCUMENTS = 100;

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const label = (max: number) =>
  z.string().max(max, `at most ${max} characters`).regex(LABEL, "an RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit");
const ip = z.string().refine((s) => net.isIP(s) !== 0, 'not an IP address');
const port = z.number({ error: 'a port number (1-65535)' }).int('a port number (1-65535)').min(1, 'a port number (1-65535)').max(65535, 'a port number (1-65535)');

export const ExternalServicePort = z
  .object({
    protocol: z.enum(['TCP'], { error: 'only TCP is supported (UDP is out of scope)' }).default('TCP'),
    port: port.describe('The port on targetIP'),
    targetPort: port.describe('The port clients in the cluster connect to (on the entry agent)'),
  })
  .strict();

export const ExternalServiceSource = z
  .object({
    service: z
      .object({
        namespace: label(63),
        name: label(63),
        ports: z.array(port).max(MAX_PORTS).optional().describe('Ports of the service that targetIP may reach on sourceIP (the way back)'),
      })
      .strict(),
    sourceIP: ip.describe('The address targetIP sees; a gateway agent must own it (--source-ip)'),
  })
  .strict();

export const ExternalService = z
  .object({
    apiVersion: z.enum(API_VERSIONS, { error: `one of ${API_VERSIONS.join(', ')}` }),
    kind: z.literal('ExternalService', { error: 'warren apply takes kind ExternalService' }),
    metadata: z
      .object({
        name: label(MAX_NAME),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      })
      .strict(),
    spec: z
      .object({
        targetIP: ip.describe('The external server'),
        sources: z.array(ExternalServiceSource).min(1, 'at least one source').max(MAX_SOURCES),
        ports: z.array(ExternalServicePort).min(1, 'at least one port').max(MAX_PORTS),
      })
      .strict(),
  })
  .strict()
  .superRefine((doc, ctx) => {
    const agent = doc.metadata.annotations?.[ENTRY_AGENT_ANNOTATION];
    if (agent === undefined || !LABEL.test(agent) || agent.length > 63) {
      ctx.addIssue({
        code: 'custom', path: ['metadata', 'annotations', ENTRY_AGENT_ANNOTATION],
        message: `${agent === undefined ? 'missing' : `"${agent.slice(0, 64)}" is not an agent name`}: name the agent in the sources' cluster, where the entries listen (e.g. ${ENTRY_AGENT_ANNOTATION}: cluster)`,
      });
    }
  })
  .describe("k8s-ext-connector's ExternalService (TCP only)");

export type ExternalService = z.output<typeof ExternalService>;

/** `spec.ports[0].protocol`, `metadata.annotations["warren.dev/entry-agent"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))) out += `${out ? '.' : ''}${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

/** How messages name a document: `externalservice "db"` when it has a name, else `document 2`. */
export function documentLabel(value: unknown, index: number): string {
  const name = (value as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  return typeof name === 'string' && name.length > 0 && name.length <= 100 ? `externalservice "${name}"` : `document ${index + 1}`;
}

/** Validates one document; a failure is a 400 naming the document and the field. */
export function checkExternalService(value: unknown, index: number): ExternalService {
  const parsed = ExternalService.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const where = formatPath(issue.path);
  const message = issue.code === 'unrecognized_keys'
    ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
    : issue.message;
  const field = formatPath([...issue.path, ...(issue.code === 'unrecognized_keys' ? [issue.keys[0]!] : [])]);
  throw new WarrenError('WARREN_E_BAD_REQUEST', `${documentLabel(value, index)}: ${where ? `${where}: ` : ''}${message}`, { field });
}

/** Checks a set of documents: each valid, no name twice. */
export function checkExternalServices(values: readonly unknown[]): ExternalService[] {
  if (values.length === 0) throw new WarrenError('WARREN_E_BAD_REQUEST', 'no ExternalService document to apply');
  if (values.length > MAX_DOCUMENTS) throw new WarrenError('WARREN_E_BAD_REQUEST', `${values.length} documents: apply at most ${MAX_DOCUMENTS} at once`);
  const docs = values.map((v, i) => checkExternalService(v, i));
  const seen = new Set<string>();
  for (const d of docs) {
    if (seen.has(d.metadata.name)) throw new WarrenError('WARREN_E_BAD_REQUEST', `externalservice "${d.metadata.name}" is given twice`);
    seen.add(d.metadata.name);
  }
  return docs;
}

/**
 * Reads YAML (one or more documents separated by `---`; a document that is a list counts as its items,
 * so `warren get externalservices -o json` applies back too) and checks every document.
 */
export function parseExternalServices(text: string, source: string): ExternalService[] {
  const values: unknown[] = [];
  for (const [i, doc] of YAML.parseAllDocuments(text).entries()) {
    const err = doc.errors[0];
    if (err) throw new WarrenError('WARREN_E_BAD_REQUEST', `${source}: document ${i + 1} is not valid YAML: ${err.message.split('\n')[0]}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) values.push(...(value as unknown[]));
    else values.push(value);
  }
  if (values.length === 0) throw new WarrenError('WARREN_E_BAD_REQUEST', `${source} holds no ExternalService document`);
  return checkExternalServices(values);
}

/** The documents as YAML that `warren apply -f` takes back: `---` between documents. */
export function formatExternalServices(docs: readonly unknown[]): string {
  return docs.map((d) => YAML.stringify(d)).join('---\n');
}

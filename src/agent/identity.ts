/**
 * The agent's identity, kept in an IdentityStore: by default its data dir (below), or in a pod a
 * Kubernetes Secret (--identity-secret, ./kube/identitySecret.ts), so that a pod that is replaced
 * comes back as the same agent. In the data dir:
 *
 *   identity.json   { name, hubUrl, caPin, joinTokenId }
 *   agent.key       private key, generated here, never leaves the machine
 *   agent.crt       certificate from the hub, bound to the name
 *   ca.crt          the hub CA, pinned by the join token
 *
 * The dir is 0700 and every file in it 0600, whatever the umask.
 *
 * The first start exchanges a join token for the certificate; later starts need no token. Renewal
 * swaps the certificate for a fresh one (same name) before it expires. The id of the join token used
 * is kept so that, once the hub has removed the agent, a new token can be told from the one it joined
 * with: only a new one replaces the identity (agent.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as z from 'zod/mini';
import { WarrenError } from '../shared/errors.js';
import { parseJoinToken, type JoinToken } from '../shared/joinToken.js';
import { makePrivateDir, writePrivateFile } from '../shared/privateFiles.js';
import { certNotAfter } from '../pki/certInfo.js';
import { fetchPinnedCa, hubRequest, jsonOrThrow } from '../client/hubHttp.js';
import type { HubEndpoint } from '../tunnel/dialHub.js';

export interface AgentIdentity {
  readonly name: string;
  readonly hubUrl: URL;
  readonly caPin: string;
  /** The id of the join token this identity was enrolled with; undefined for identities from before it was kept. */
  readonly joinTokenId: string | undefined;
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const identitySchema = z.object({ name: z.string(), hubUrl: z.string(), caPin: z.string(), joinTokenId: z.optional(z.string()) });

/** Where an identity is kept: loaded once at start, saved on join, re-join and renewal. */
export interface IdentityStore {
  /** For messages: "data dir /var/lib/warren", "Secret warren-system/warren-agent-identity (key node1.json)". */
  readonly where: string;
  load(): Promise<AgentIdentity | undefined>;
  save(id: AgentIdentity): Promise<void>;
}

/** The identity as one JSON document (what a Secret holds under the agent's key). */
export const identityDocumentSchema = z.extend(identitySchema, { caPem: z.string(), certPem: z.string(), keyPem: z.string() });

export function identityDocument(id: AgentIdentity): z.input<typeof identityDocumentSchema> {
  return { name: id.name, hubUrl: id.hubUrl.toString(), caPin: id.caPin, joinTokenId: id.joinTokenId, caPem: id.caPem, certPem: id.certPem, keyPem: id.keyPem };
}

/** Throws when the document is not an identity (the caller says where it came from and what to do). */
export function identityFromDocument(doc: unknown): AgentIdentity {
  const id = identityDocumentSchema.parse(doc);
  if (!id.certPem.includes('BEGIN CERTIFICATE') || !id.caPem.includes('BEGIN CERTIFICATE') || !id.keyPem.includes('PRIVATE KEY')) {
    throw new Error('a certificate or the key is not PEM');
  }
  return { ...id, joinTokenId: id.joinTokenId, hubUrl: new URL(id.hubUrl) };
}

/** The identity in a data dir (the files listed above). */
export function dataDirStore(dataDir: string): IdentityStore {
  return {
    where: `data dir ${dataDir}`,
    load: () => Promise.resolve(loadIdentity(dataDir)),
    save: (id) => Promise.resolve(saveIdentity(dataDir, id)),
  };
}

function files(dataDir: string) {
  const f = (n: string) => path.join(dataDir, n);
  return { identity: f('identity.json'), key: f('agent.key'), cert: f('agent.crt'), ca: f('ca.crt') };
}

/** Writes through a temp file and rename, so a crash never leaves half a certificate. */
function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writePrivateFile(tmp, data);
  fs.renameSync(tmp, file);
}

/** A key and CSR, from the signing library, loaded only now: a running agent needs it only to join or renew. */
async function newCsr(name: string): Promise<{ csrPem: string; keyPem: string }> {
  const { createCsr } = await import('../pki/pki.js');
  return createCsr(name);
}

function loadIdentity(dataDir: string): AgentIdentity | undefined {
  const f = files(dataDir);
  if (!fs.existsSync(f.identity)) return undefined;
  try {
    const id = identitySchema.parse(JSON.parse(fs.readFileSync(f.identity, 'utf8')));
    return {
      name: id.name, hubUrl: new URL(id.hubUrl), caPin: id.caPin, joinTokenId: id.joinTokenId,
      caPem: fs.readFileSync(f.ca, 'utf8'), certPem: fs.readFileSync(f.cert, 'utf8'), keyPem: fs.readFileSync(f.key, 'utf8'),
    };
  } catch (err) {
    throw new WarrenError('WARREN_E_CONFIG', `agent data dir ${dataDir} is damaged (${(err as Error).message}); move it away and join again with a token`);
  }
}

function saveIdentity(dataDir: string, id: AgentIdentity): void {
  makePrivateDir(dataDir);
  const f = files(dataDir);
  writeAtomic(f.key, id.keyPem);
  writeAtomic(f.cert, id.certPem);
  writeAtomic(f.ca, id.caPem);
  writeAtomic(f.identity, JSON.stringify({ name: id.name, hubUrl: id.hubUrl.toString(), caPin: id.caPin, joinTokenId: id.joinTokenId }, null, 2) + '\n');
}

/** The join token, or a refusal that says what is wrong with it (a token cut short when copied is the usual case). */
export function joinTokenOrThrow(token: string): JoinToken {
  const parsed = parseJoinToken(token);
  if (parsed) return parsed;
  throw new WarrenError('WARREN_E_JOIN_TOKEN_INVALID', `the join token is malformed (${token.trim().length} characters; was it cut short when copied?): copy it whole from \`warren join-token create\`, which prints one line starting with wj1.`);
}

/** First start: pin the hub CA from the token, send a CSR with the token, store the certificate. */
export async function enroll(opts: {
  token: string;
  name: string;
  labels: Record<string, string>;
  store: IdentityStore;
  hubOverride?: string | undefined;
  proxy?: URL | undefined;
}): Promise<AgentIdentity> {
  const parsed = joinTokenOrThrow(opts.token);
  const hubUrl = new URL(opts.hubOverride ?? parsed.hubUrl);
  const base = { url: hubUrl, ...(opts.proxy ? { proxy: opts.proxy } : {}) };
  const caPem = await fetchPinnedCa(base, parsed.caPin);
  const { csrPem, keyPem } = await newCsr(opts.name);
  const out = jsonOrThrow<{ certPem: string; name: string }>(
    await hubRequest({ ...base, ca: caPem }, 'POST', '/api/v1/join', { body: { token: opts.token, name: opts.name, csr: csrPem, labels: opts.labels } }),
  );
  const id: AgentIdentity = { name: out.name, hubUrl, caPin: parsed.caPin, joinTokenId: parsed.id, caPem, certPem: out.certPem, keyPem };
  await opts.store.save(id);
  return id;
}

/** Renews the certificate over mTLS with the current one; returns the new identity (already saved). */
export async function renew(id: AgentIdentity, store: IdentityStore, proxy?: URL): Promise<AgentIdentity> {
  const ep: HubEndpoint = { url: id.hubUrl, ca: id.caPem, cert: id.certPem, key: id.keyPem, ...(proxy ? { proxy } : {}) };
  const { csrPem, keyPem } = await newCsr(id.name);
  const out = jsonOrThrow<{ certPem: string }>(await hubRequest(ep, 'POST', '/api/v1/renew', { body: { csr: csrPem } }));
  const next = { ...id, certPem: out.certPem, keyPem };
  await store.save(next);
  return next;
}

/** When to renew: two thirds into the certificate's remaining life (at least a minute from now). */
export function renewalDelayMs(certPem: string, now = Date.now()): number {
  const remaining = certNotAfter(certPem).getTime() - now;
  // setTimeout cannot wait longer than 2^31-1 ms (~24.8 days); the timer re-arms after that.
  return Math.min(2 ** 31 - 1, Math.max(60_000, Math.floor((remaining * 2) / 3)));
}

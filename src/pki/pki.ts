/**
 * Certificates for Warren's private PKI: the hub CA, the hub's serving certificate, agent client
 * certificates issued from agent CSRs, and user client certificates. ECDSA P-256 throughout.
 *
 * Subjects tell the roles apart, because every leaf is signed by the same CA:
 *   agent "alpha"            CN=alpha, OU=warren-agent       (client auth only)
 *   user "ana" in "ops,dev"  CN=ana, O=ops, O=dev, OU=warren-user
 *   hub                      CN=warren-hub                   (server auth; SANs for every name it answers on)
 *   hub "h-1a2b" as a peer   CN=h-1a2b, OU=warren-hub-peer   (client auth only; relays between hubs)
 *
 * Only the hub process itself issues the hub-peer kind, from the CA key in its data dir: no join,
 * renewal or user-certificate request can ask for that OU, so an agent or user cannot pose as a hub.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AGENT_OU, HUB_PEER_OU, USER_OU, normalizeSerial } from './certInfo.js';

export * from './certInfo.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALG: EcKeyGenParams & EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' };

export interface KeyPairPem {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']);
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return pem(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALG, false, ['sign']);
}

/** PEM text always ends in a newline, so PEMs can be concatenated into chains. */
function pem(text: string): string {
  return text.endsWith('\n') ? text : text + '\n';
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString('hex');
}

/** Escapes an RDN value for @peculiar/x509's string names. */
function rdn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

const DAY_MS = 86_400_000;

export async function createCa(commonName = 'Warren CA', days = 3650): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${rdn(commonName)}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: pem(cert.toString('pem')), keyPem: await privateKeyToPem(keys.privateKey) };
}

export interface Ca {
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly key: CryptoKey;
}

export async function loadCa(pair: KeyPairPem): Promise<Ca> {
  return { cert: new x509.X509Certificate(pair.certPem), certPem: pair.certPem, key: await importPrivateKey(pair.keyPem) };
}

interface LeafOptions {
  readonly subject: string;
  readonly publicKey: CryptoKey;
  readonly days: number;
  readonly usage: 'server' | 'client';
  readonly sans?: readonly string[];
}

async function issueLeaf(ca: Ca, opts: LeafOptions): Promise<{ pem: string; serial: string; notAfter: Date }> {
  const now = Date.now();
  const serial = randomSerial();
  const notAfter = new Date(now + opts.days * DAY_MS);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([opts.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
  ];
  if (opts.sans?.length) {
    const names = opts.sans.map((s) => ({ type: isIpLiteral(s) ? ('ip' as const) : ('dns' as const), value: s }));
    extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: opts.subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    publicKey: opts.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN_ALG,
    extensions,
  });
  return { pem: pem(cert.toString('pem')), serial: normalizeSerial(serial), notAfter };
}

function isIpLiteral(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}

export async function issueServerCert(ca: Ca, sans: readonly string[], days = 397): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const leaf = await issueLeaf(ca, { subject: 'CN=warren-hub', publicKey: keys.publicKey, days, usage: 'server', sans });
  return { certPem: leaf.pem, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** The client certificate a hub presents to other hubs (relay), made fresh at every start. */
export async function issueHubPeerCert(ca: Ca, hubId: string, days = 30): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const leaf = await issueLeaf(ca, { subject: `CN=${rdn(hubId)}, OU=${HUB_PEER_OU}`, publicKey: keys.publicKey, days, usage: 'client' });
  return { certPem: leaf.pem, keyPem: await privateKeyToPem(keys.privateKey) };
}

export interface IssuedCert {
  readonly certPem: string;
  readonly serial: string;
  readonly notAfter: Date;
}

/**
 * Issues an agent certificate from a CSR. The CSR's own subject is ignored apart from being checked:
 * the name comes from the join or renewal that the hub authorised, so a CSR cannot choose its identity.
 */
export async function issueAgentCert(ca: Ca, csrPem: string, name: string, days: number): Promise<IssuedCert> {
  const csr = parseCsr(csrPem);
  if (!(await csr.verify())) throw new Error('CSR signature does not verify');
  const leaf = await issueLeaf(ca, {
    subject: `CN=${rdn(name)}, OU=${AGENT_OU}`,
    publicKey: await csr.publicKey.export(),
    days,
    usage: 'client',
  });
  return { certPem: leaf.pem, serial: leaf.serial, notAfter: leaf.notAfter };
}

/**
 * Issues a user client certificate from a CSR made on the user's machine (the key never leaves it).
 * Subject: CN=user, O=group…, OU=warren-user; like agent certificates, the CSR's own subject is ignored.
 */
export async function issueUserCert(ca: Ca, csrPem: string, user: string, groups: readonly string[], days: number): Promise<IssuedCert> {
  const csr = parseCsr(csrPem);
  if (!(await csr.verify())) throw new Error('CSR signature does not verify');
  const subject = [`CN=${rdn(user)}`, ...groups.map((g) => `O=${rdn(g)}`), `OU=${USER_OU}`].join(', ');
  const leaf = await issueLeaf(ca, { subject, publicKey: await csr.publicKey.export(), days, usage: 'client' });
  return { certPem: leaf.pem, serial: leaf.serial, notAfter: leaf.notAfter };
}

function parseCsr(csrPem: string): x509.Pkcs10CertificateRequest {
  try {
    return new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new Error('CSR is not a PEM PKCS#10 request', { cause: err });
  }
}

/** Agent side: a fresh key and a CSR naming the agent. */
export async function createCsr(name: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${rdn(name)}`, keys, signingAlgorithm: SIGN_ALG });
  return { csrPem: pem(csr.toString('pem')), keyPem: await privateKeyToPem(keys.privateKey) };
}

/** The CA pin: `sha256:` + hex SHA-256 of the certificate's DER bytes. */

/**
 * The hub's key material in its data dir, created on first start:
 *
 *   ca.crt, ca.key      the hub CA (agents pin ca.crt's SHA-256; it signs agent and user certificates)
 *   hub.crt, hub.key    the serving certificate, re-issued whenever the names it must cover change
 *   signing.key         the ES256 key that signs access tokens
 *
 * Keys are written 0600 and the data dir 0700.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { createCa, loadCa, issueServerCert, fingerprint, certSans, type Ca } from '../pki/pki.js';
import { canonicalIp } from '../hostPort.js';

export interface HubPki {
  readonly ca: Ca;
  readonly caPin: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly signingKey: KeyObject;
  readonly verifyKey: KeyObject;
}

const RENEW_BEFORE_MS = 30 * 86_400_000;

function writeSecret(file: string, data: string): void {
  fs.writeFileSync(file, data, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

function readIf(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function canonicalSan(s: string): string {
  return net.isIP(s) ? canonicalIp(s) : s.toLowerCase();
}

/** The names the serving certificate must cover: loopback, this host, the public URL's host, extras. */
export function wantedSans(publicHost: string | undefined, extra: readonly string[]): string[] {
  const names = ['localhost', '127.0.0.1', '::1', os.hostname(), ...(publicHost ? [publicHost] : []), ...extra];
  return [...new Set(names.map(canonicalSan))];
}

export async function loadHubPki(
  dataDir: string,
  opts: { sans: readonly string[]; tlsCertFile?: string | undefined; tlsKeyFile?: string | undefined },
): Promise<HubPki & { created: boolean }> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const f = (name: string) => path.join(dataDir, name);

  let created = false;
  let caCert = readIf(f('ca.crt'));
  let caKey = readIf(f('ca.key'));
  if (!caCert || !caKey) {
    const pair = await createCa();
    writeSecret(f('ca.key'), pair.keyPem);
    fs.writeFileSync(f('ca.crt'), pair.certPem, { mode: 0o644 });
    caCert = pair.certPem;
    caKey = pair.keyPem;
    created = true;
  }
  const ca = await loadCa({ certPem: caCert, keyPem: caKey });

  let serverCertPem: string;
  let serverKeyPem: string;
  if (opts.tlsCertFile && opts.tlsKeyFile) {
    serverCertPem = fs.readFileSync(opts.tlsCertFile, 'utf8');
    serverKeyPem = fs.readFileSync(opts.tlsKeyFile, 'utf8');
  } else {
    const current = readIf(f('hub.crt'));
    const key = readIf(f('hub.key'));
    if (current && key && coversAndValid(current, opts.sans, caCert)) {
      serverCertPem = current;
      serverKeyPem = key;
    } else {
      const issued = await issueServerCert(ca, opts.sans);
      writeSecret(f('hub.key'), issued.keyPem);
      fs.writeFileSync(f('hub.crt'), issued.certPem, { mode: 0o644 });
      serverCertPem = issued.certPem;
      serverKeyPem = issued.keyPem;
    }
  }

  let signing = readIf(f('signing.key'));
  if (!signing) {
    signing = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeSecret(f('signing.key'), signing);
  }
  const signingKey = createPrivateKey(signing);
  return {
    ca,
    caPin: fingerprint(caCert),
    serverCertPem,
    serverKeyPem,
    signingKey,
    verifyKey: createPublicKey(signingKey),
    created,
  };
}

function coversAndValid(certPem: string, sans: readonly string[], caPem: string): boolean {
  const cert = new X509Certificate(certPem);
  if (!cert.verify(new X509Certificate(caPem).publicKey)) return false;
  if (new Date(cert.validTo).getTime() - Date.now() < RENEW_BEFORE_MS) return false;
  const have = new Set(certSans(certPem).map(canonicalSan));
  return sans.every((s) => have.has(canonicalSan(s)));
}

/**
 * The hub's key material in its data dir, created on first start:
 *
 *   ca.crt, ca.key      the hub CA (agents pin ca.crt's SHA-256; it signs agent and user certificates)
 *   hub.crt, hub.key    the serving certificate, re-issued whenever the names it must cover change
 *   signing.key         the ES256 key that signs access tokens
 *
 * Every file is written 0600 and the data dir is 0700 (certificates too: nothing here is for others).
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { createCa, loadCa, issueServerCert, fingerprint, certSans, type Ca } from '../pki/pki.js';
import { canonicalIp } from '../shared/hostPort.js';
import { makePrivateDir, writePrivateFile } from '../shared/privateFiles.js';

export interface HubPki {
  readonly ca: Ca;
  readonly caPin: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly signingKey: KeyObject;
  readonly verifyKey: KeyObject;
}

const RENEW_BEFORE_MS = 30 * 86_400_000;

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
  makePrivateDir(dataDir);
  const f = (name: string) => path.join(dataDir, name);

  let created = false;
  let caCert = readIf(f('ca.crt'));
  let caKey = readIf(f('ca.key'));
  if (!caCert || !caKey) {
    const pair = await createCa();
    writePrivateFile(f('ca.key'), pair.keyPem);
    writePrivateFile(f('ca.crt'), pair.certPem);
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
      writePrivateFile(f('hub.key'), issued.keyPem);
      writePrivateFile(f('hub.crt'), issued.certPem);
      serverCertPem = issued.certPem;
      serverKeyPem = issued.keyPem;
    }
  }

  let signing = readIf(f('signing.key'));
  if (!signing) {
    signing = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writePrivateFile(f('signing.key'), signing);
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

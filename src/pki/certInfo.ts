/**
 * What Warren reads from certificates it already holds (fingerprints, expiry, serials, SANs, the role
 * OUs), with Node's own X509Certificate only. Kept apart from src/pki/pki.ts, which issues and signs
 * with @peculiar/x509: that library and its dependencies cost an agent ~20 MiB of RSS, and an agent
 * needs them only to join or renew (docs/benchmarks.md).
 */
import { createHash, X509Certificate } from 'node:crypto';

export const AGENT_OU = 'warren-agent';
export const USER_OU = 'warren-user';
/** Hubs relaying to each other (src/pki/pki.ts issueHubPeerCert). */
export const HUB_PEER_OU = 'warren-hub-peer';

export function fingerprint(certPem: string): string {
  return 'sha256:' + createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

export function certNotAfter(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}

/** Serial numbers compare as lower-case hex without leading zeros, however a library prints them. */
export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+/, '') || '0';
}

export function certSerial(certPem: string): string {
  return normalizeSerial(new X509Certificate(certPem).serialNumber);
}

/** The DNS and IP SANs of a certificate, lowercased. */
export function certSans(certPem: string): string[] {
  const alt = new X509Certificate(certPem).subjectAltName ?? '';
  return alt
    .split(', ')
    .map((s) => s.replace(/^(DNS|IP Address):/, '').toLowerCase())
    .filter(Boolean);
}

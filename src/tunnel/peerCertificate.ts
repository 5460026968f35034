/**
 * Who a TLS peer is by its client certificate, read once for the tunnel, the uplink, the API's agent
 * routes and the user doors. The hub CA issues exactly two kinds (src/pki/pki.ts):
 *
 *   CN=alpha, OU=warren-agent                      → { kind: 'agent', name: 'alpha' }
 *   CN=ana, O=ops, O=dev, OU=warren-user           → { kind: 'user', name: 'ana', groups: ['ops', 'dev'] }
 *
 * Anything else (another OU, a repeated CN on an agent certificate, no CN) is no identity at all.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { WarrenError } from '../shared/errors.js';
import { AGENT_OU, HUB_PEER_OU, USER_OU, normalizeSerial } from '../pki/certInfo.js';

export interface CertIdentity {
  readonly kind: 'agent' | 'user';
  readonly name: string;
  /** Lower-case hex without leading zeros, as the store keeps it. */
  readonly serial: string;
  /** The certificate's O attributes (users' groups); empty for an agent. */
  readonly groups: readonly string[];
}

/** The subject as Node reports it: a repeated attribute becomes an array. */
type Subject = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The identity a certificate names, trusted or not: only the caller knows whether the chain was verified. */
export function certIdentity(cert: Pick<PeerCertificate, 'serialNumber'> & { readonly subject?: unknown }): CertIdentity | undefined {
  const subject = (cert.subject ?? undefined) as Subject | undefined;
  if (!subject || typeof subject !== 'object' || typeof cert.serialNumber !== 'string') return undefined;
  const serial = normalizeSerial(cert.serialNumber);
  if (subject.OU === AGENT_OU && typeof subject.CN === 'string' && subject.CN) return { kind: 'agent', name: subject.CN, serial, groups: [] };
  const user = asArray(subject.CN)[0];
  if (asArray(subject.OU).includes(USER_OU) && user) return { kind: 'user', name: user, serial, groups: asArray(subject.O) };
  return undefined;
}

/** The identity of a peer whose certificate chains to the hub CA; undefined without one. */
export function verifiedPeer(socket: TLSSocket): CertIdentity | undefined {
  // getPeerCertificate() builds a fresh object from the DER every call (~0.1 ms): callers read it once.
  return socket.authorized ? certIdentity(socket.getPeerCertificate()) : undefined;
}

/**
 * The hub id of a peer that presented a hub-peer certificate chaining to the hub CA (CN=ID,
 * OU=warren-hub-peer and nothing else); undefined for anyone else, agents and users included.
 */
export function verifiedHubPeer(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const subject = socket.getPeerCertificate().subject as Subject | undefined;
  if (!subject || subject.OU !== HUB_PEER_OU || subject.O !== undefined || typeof subject.CN !== 'string' || !subject.CN) return undefined;
  return subject.CN;
}

/** The name a peer's certificate claims, verified or not: for the log line of a refusal. */
export function claimedName(socket: TLSSocket): string | undefined {
  return certIdentity(socket.getPeerCertificate())?.name;
}

/**
 * Admits an agent by its certificate: signed by the hub CA, of the agent kind, and the very certificate
 * on record for its name (`lookup` finds the record), so that removing the agent or replacing its
 * certificate locks the old one out. Rejects with WARREN_E_AGENT_REVOKED saying which of these failed.
 */
export async function admitAgent<R extends { readonly certSerial: string }>(
  socket: TLSSocket,
  lookup: (name: string) => Promise<R | undefined>,
): Promise<{ readonly name: string; readonly record: R }> {
  if (!socket.authorized) throw new WarrenError('WARREN_E_AGENT_REVOKED', 'agent certificate is missing or not signed by this hub; join with a token');
  const id = certIdentity(socket.getPeerCertificate());
  if (id?.kind !== 'agent') throw new WarrenError('WARREN_E_AGENT_REVOKED', 'certificate is not an agent certificate');
  const record = await lookup(id.name);
  if (record?.certSerial !== id.serial) {
    throw new WarrenError('WARREN_E_AGENT_REVOKED', `agent "${id.name}" was removed or its certificate replaced; join again with a new token`);
  }
  return { name: id.name, record };
}

function asArray(v: string | readonly string[] | undefined): string[] {
  return v === undefined ? [] : typeof v === 'string' ? [v] : [...v];
}

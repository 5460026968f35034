/**
 * Header hygiene for the two proxy hops of a kube request (client → hub → agent → API server).
 *
 * Hop-by-hop headers (RFC 9110 §7.6.1, plus any the Connection header names) never cross a hop;
 * `Connection: Upgrade` and `Upgrade` do on an upgrade request, because the upgrade is end to end
 * (kubectl ↔ API server). Everything else is kept byte for byte, repeated headers included, so content
 * negotiation (`Accept: …;as=Table`, protobuf), `Warning` headers and WebSocket/SPDY handshakes pass.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'http2-settings',
]);

export interface FilteredHeaders {
  readonly headers: OutgoingHttpHeaders;
  /** Names (as the client spelled them) of the headers `drop` removed. */
  readonly dropped: readonly string[];
}

/** True for a request that asks to switch protocols (WebSocket, SPDY). */
export function isUpgrade(headers: IncomingHttpHeaders): boolean {
  return headers.upgrade !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test((headers.connection ?? ''));
}

/**
 * Copies `rawHeaders` (name, value, name, value…) without hop-by-hop headers and without those `drop`
 * says to drop (given the lower-cased name). With `upgrade`, `Connection: Upgrade` and `Upgrade` stay.
 */
export function filterHeaders(rawHeaders: readonly string[], opts: { upgrade: boolean; drop?: (lowerName: string) => boolean }): FilteredHeaders {
  const named = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'connection') {
      for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
    }
  }
  const headers: Record<string, string | string[]> = {};
  const dropped: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (HOP_BY_HOP.has(lower) || (named.has(lower) && lower !== 'upgrade')) continue;
    if (opts.drop?.(lower)) {
      dropped.push(name);
      continue;
    }
    const prev = headers[lower];
    headers[lower] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  if (opts.upgrade) {
    const upgrade = rawValue(rawHeaders, 'upgrade');
    if (upgrade !== undefined) {
      headers.connection = 'Upgrade';
      headers.upgrade = upgrade;
    }
  }
  return { headers, dropped };
}

/** Every value of a header in rawHeaders order (repeated lines stay separate, commas are not split). */
export function rawValues(rawHeaders: readonly string[], lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lowerName) out.push(rawHeaders[i + 1]!);
  return out;
}

function rawValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  return rawValues(rawHeaders, lowerName)[0];
}

/** Response head for a raw socket (an upgrade's 101, or a refused upgrade's answer). */
export function responseHead(statusCode: number, statusMessage: string, rawHeaders: readonly string[], opts: { keepUpgrade: boolean }): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage || 'Status'}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (lower === 'transfer-encoding' || lower === 'keep-alive') continue;
    if (!opts.keepUpgrade && (lower === 'connection' || lower === 'upgrade')) continue;
    head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  }
  if (!opts.keepUpgrade) head += 'connection: close\r\n';
  return head + '\r\n';
}

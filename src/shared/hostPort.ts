/**
 * `HOST:PORT` as every door and flag writes it.
 *
 *   node1:22              → { host: 'node1', port: 22 }
 *   10.20.0.5:8080        → { host: '10.20.0.5', port: 8080 }
 *   [fd00::1]:443         → { host: 'fd00::1', port: 443 }     (IPv6 in brackets)
 *   db.prod.alpha.warren:5432
 *
 * Refused (the client's error, answered 400 WARREN_E_BAD_TARGET, never a crash):
 *
 *   [fe80::1%25eth0]:22   a zone id: it names an interface of the machine that reads it, not the agent's
 *   db%2Eprod:5432        percent-encoding: an authority is not percent-decoded
 *   :22, [::1], node1:0, node1:65536
 *
 * Host names follow RFC 1123 (labels of letters, digits and hyphens, 253 characters at most, case
 * folded to lower case); `_` is tolerated in labels as real DNS (SRV, some internal zones) uses it.
 */
import net from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

export function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  return host.replace(/\.$/, '').split('.').every((l) => LABEL.test(l));
}

/** An RFC 1123 label: what agent names must be. */
export function isLabel(name: string): boolean {
  return name.length <= 63 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name);
}

export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Parses HOST:PORT; undefined when malformed. Host names are lower-cased, IPv6 canonicalised. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text.trim());
  if (!m) return undefined;
  const port = parsePort(m[3]!);
  if (port === undefined) return undefined;
  if (m[1] !== undefined) {
    // net.isIPv6 accepts a zone id (`fe80::1%eth0`), which the URL parser in canonicalIp rejects.
    if (net.isIPv6(m[1]) && !m[1].includes('%')) return { host: canonicalIp(m[1]), port };
    return undefined;
  }
  const host = m[2]!.toLowerCase();
  if (net.isIPv4(host) || isHostName(host)) return { host, port };
  return undefined;
}

export function formatHostPort({ host, port }: HostPort): string {
  // Only an IPv6 address holds a colon (a name cannot). Not net.isIPv6: its first call compiles a regex
  // for ~10 ms, which every `warren connect` would pay.
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Where a connection came from, as audit rows and logs spell it:
 *
 *   10.0.0.7:51234, [fd00::7]:51234   a TCP peer (IPv6 in brackets)
 *   unix                              a unix-socket peer, which has no address
 *   unknown                           a socket closed before its peer was read
 */
export function formatSource(socket: Pick<net.Socket, 'remoteAddress' | 'remotePort' | 'localAddress' | 'pending'>): string {
  const ip = socket.remoteAddress;
  if (ip !== undefined) return formatHostPort({ host: ip, port: socket.remotePort ?? 0 });
  // A connected TCP socket always has a local address; a unix socket has none on either end.
  return !socket.pending && socket.localAddress === undefined ? 'unix' : 'unknown';
}

/** Canonical text of an IP address (compressed, lower-case IPv6); other strings pass through. */
export function canonicalIp(ip: string): string {
  if (!net.isIPv6(ip)) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** HOST:PORT for listen flags; `:8443` and `8443` mean all interfaces. */
export function parseListen(text: string, defaultHost = '0.0.0.0'): HostPort | undefined {
  if (/^\d+$/.test(text)) return parseListenPort(defaultHost, text);
  if (text.startsWith(':')) return parseListenPort(defaultHost, text.slice(1));
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) return undefined;
  return parseListenPort(m[1] ?? m[2]!, m[3]!);
}

function parseListenPort(host: string, portText: string): HostPort | undefined {
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return undefined;
  return { host, port: Number(portText) };
}

/**
 * The grammar of a TCP forward (`warren forwards create`), shared by the CLI (usage errors, exit 2) and
 * the hub API (which validates again: it trusts no client).
 *
 * Entry, where the forward listens:
 *
 *   hub:8080                 → the hub, all IPv4 interfaces (0.0.0.0), port 8080
 *   hub:127.0.0.1:8080       → the hub, loopback only
 *   hub:[::1]:8080           → the hub, IPv6 loopback
 *   hub:0                    → the hub, a free port chosen once at creation and kept (restarts reuse it)
 *   alpha:5432               → agent "alpha", all IPv4 interfaces of its host, port 5432
 *   alpha:10.0.0.5:5432      → agent "alpha", only on its address 10.0.0.5
 *
 * `hub` is a keyword here: an agent literally named "hub" cannot carry an entry.
 *
 * Allow-from, who may connect to the entry (default: anyone who can reach it):
 *
 *   10.0.0.0/8,192.168.1.7   → CIDRs, or single addresses (as /32 or /128)
 *
 * IPv4-mapped IPv6 sources (::ffff:10.1.2.3, what a dual-stack socket reports) match IPv4 CIDRs.
 */
import net from 'node:net';
import { formatHostPort, isLabel } from './hostPort.js';
import { cidrContains, parseCidr } from './patterns.js';

export const HUB_ENTRY = 'hub';
/**
 * The annotation of an ExternalService (externalService.ts) that names the agent whose host (a pod in
 * the sources' cluster) carries its rules' entries. Here, with the entries' grammar, so that the CLI
 * can name it without loading the document's schema.
 */
export const ENTRY_AGENT_ANNOTATION = 'warren.dev/entry-agent';
/** Where an entry binds when it names no address. */
export const DEFAULT_BIND = '0.0.0.0';

export type ForwardEntry =
  | { readonly kind: 'hub'; readonly host: string; readonly port: number }
  | { readonly kind: 'agent'; readonly agent: string; readonly host: string; readonly port: number };

/** Forward names are RFC 1123 labels, like agent names: they appear in URLs, audit rows and principals. */
export function isForwardName(name: string): boolean {
  return isLabel(name);
}

/** Parses an entry; returns a message saying what is wrong instead of throwing. */
export function parseEntry(text: string): ForwardEntry | { error: string } {
  const colon = text.indexOf(':');
  if (colon <= 0) return { error: `entry "${text}" is not hub:[ADDR:]PORT or AGENT:[ADDR:]PORT` };
  const where = text.slice(0, colon).toLowerCase();
  const rest = text.slice(colon + 1);
  let host = DEFAULT_BIND;
  let portText = rest;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(rest);
  if (m) {
    host = m[1] ?? m[2]!;
    portText = m[3]!;
    // net.isIPv6 accepts a zone id (`fe80::1%eth0`), which the URL parser below rejects with a throw.
    if (m[1] !== undefined ? !net.isIPv6(host) || host.includes('%') : !net.isIPv4(host)) {
      return { error: `entry "${text}": bind address "${host}" is not an IP address (IPv6 in brackets: hub:[::1]:8080)` };
    }
    if (m[1] !== undefined) host = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return { error: `entry "${text}": "${portText}" is not a port (0-65535; 0 picks a free one)` };
  const port = Number(portText);
  if (where === HUB_ENTRY) return { kind: 'hub', host, port };
  if (!isLabel(where)) return { error: `entry "${text}": "${where}" is neither "hub" nor an agent name` };
  return { kind: 'agent', agent: where, host, port };
}

/** The canonical text of an entry (`hub:0.0.0.0:8080`, `alpha:0.0.0.0:5432`). */
export function formatEntry(e: ForwardEntry): string {
  return `${e.kind === 'hub' ? HUB_ENTRY : e.agent}:${formatHostPort({ host: e.host, port: e.port })}`;
}

/** `10.0.0.0/8,192.168.1.7` → canonical CIDRs; returns a message for the first bad item. */
export function parseAllowFrom(items: readonly string[]): string[] | { error: string } {
  const out: string[] = [];
  for (const raw of items) {
    const item = raw.trim();
    if (!item) continue;
    const v = net.isIP(item);
    const cidr = v === 4 ? `${item}/32` : v === 6 ? `${item}/128` : item;
    if (!parseCidr(cidr)) return { error: `allow-from "${item}" is not a CIDR (10.0.0.0/8) or an IP address` };
    out.push(cidr);
  }
  return out;
}

/** Whether a connection from `ip` may use a forward with this allow-from list (empty: anyone). */
export function sourceAllowed(allowFrom: readonly string[], ip: string | undefined): boolean {
  if (allowFrom.length === 0) return true;
  if (!ip) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const candidates = mapped ? [ip, mapped[1]!] : [ip];
  return allowFrom.some((cidr) => candidates.some((c) => cidrContains(cidr, c)));
}

/** Two entries that would fight over one socket: same place, same port (port 0 never clashes). */
export function entriesClash(a: ForwardEntry, b: ForwardEntry): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  if (a.kind !== b.kind) return false;
  if (a.kind === 'agent' && b.kind === 'agent' && a.agent !== b.agent) return false;
  // A wildcard address overlaps every address of the same family; be conservative and call it a clash.
  const wild = (h: string) => h === '0.0.0.0' || h === '::';
  return a.host === b.host || wild(a.host) || wild(b.host);
}

/** Why an entry could not listen, as the forward's last error (hub and agent word it the same way). */
export function describeBindError(err: NodeJS.ErrnoException, where: string): { code: 'WARREN_E_LISTEN_FAILED'; message: string } {
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is in use',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EPERM: 'permission denied',
    EADDRNOTAVAIL: 'no such local address',
  };
  return { code: 'WARREN_E_LISTEN_FAILED', message: `cannot listen on ${where}: ${why[err.code ?? ''] ?? err.code ?? err.message}` };
}

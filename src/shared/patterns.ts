/**
 * Patterns shared by grants (hub) and allow-lists (agent): globs over names, CIDRs over addresses,
 * and port lists.
 *
 *   glob   prod-*, *.corp.internal, db-?      (* any run, ? one character, case-insensitive)
 *   CIDR   10.20.0.0/16, fd00::/8
 *   ports  22,80,8000-8100
 *   route  10.20.0.0/16, .corp.internal   (what an agent serves: a CIDR or a DNS suffix)
 */
import net from 'node:net';

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Compiled globs: grants and allow-lists are checked on every stream, and hold few distinct patterns. */
const compiled = new Map<string, RegExp>();

export function matchesGlob(glob: string, value: string): boolean {
  let re = compiled.get(glob);
  if (!re) {
    if (compiled.size >= 1024) compiled.clear();
    compiled.set(glob, (re = globToRegExp(glob)));
  }
  return re.test(value);
}

/** `10.0.0.0/8`, `fd00::/8`; undefined when not a CIDR. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const v = net.isIP(m[1]!);
  const prefix = Number(m[2]);
  if (v === 0 || prefix > (v === 4 ? 32 : 128)) return undefined;
  return { address: m[1]!, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const v = net.isIP(ip);
  if (!c || v === 0 || (v === 4) !== (c.family === 'ipv4')) return false;
  const list = new net.BlockList();
  list.addSubnet(c.address, c.prefix, c.family);
  return list.check(ip, c.family);
}

/** A route: a CIDR (10.20.0.0/16) or a DNS suffix starting with a dot (.corp.internal). */
export function isRoute(r: string): boolean {
  return Boolean(parseCidr(r)) || /^\.[a-z0-9_-]+(\.[a-z0-9_-]+)*$/i.test(r);
}

/** Host pattern: a CIDR (IP hosts only) or a glob (names and IPs). */
export function hostMatches(pattern: string, host: string): boolean {
  if (parseCidr(pattern)) return cidrContains(pattern, host);
  return matchesGlob(pattern, host);
}

/** `22,80,8000-8100`; undefined when malformed. */
export function parsePorts(text: string): Array<[number, number]> | undefined {
  const ranges: Array<[number, number]> = [];
  for (const part of text.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi) return undefined;
    ranges.push([lo, hi]);
  }
  return ranges;
}

export function portMatches(ports: string, port: number): boolean {
  return (parsePorts(ports) ?? []).some(([lo, hi]) => port >= lo && port <= hi);
}

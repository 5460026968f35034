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

/**
 * Whether `value` matches `glob` (case-insensitive). A greedy two-pointer match that backs up only to
 * the last `*`: at most len(glob) × len(value) steps. The regular expression it replaces (`*` → `.*`)
 * backtracked exponentially in the number of stars: the grant `*-*-*-*-*-prod` against a 253-character
 * target like `a-a-a-…` held the hub's event loop for 20 s, and a client chooses the target.
 */
export function matchesGlob(glob: string, value: string): boolean {
  let g = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    const c = glob[g];
    if (c === '*') {
      star = g++;
      resume = v;
    } else if (c !== undefined && (c === '?' || sameChar(c, value[v]!))) {
      g++;
      v++;
    } else if (star >= 0) {
      g = star + 1;
      v = ++resume;
    } else return false;
  }
  while (glob[g] === '*') g++;
  return g === glob.length;
}

function sameChar(a: string, b: string): boolean {
  return a === b || a.toLowerCase() === b.toLowerCase();
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

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

/**
 * An IP address as a number (32 bits for IPv4, 128 for IPv6), so that a CIDR test is a mask and a
 * compare: `net.BlockList` answers "contains" but not "which network", which a route index needs, and
 * building one per test cost ~7 µs (a C++ object). An IPv6 zone id (`fe80::1%eth0`) is refused.
 */
export function ipValue(ip: string): { family: 4 | 6; value: bigint } | undefined {
  if (net.isIPv4(ip)) return { family: 4, value: BigInt(ip.split('.').reduce((v, part) => v * 256 + Number(part), 0)) };
  const bytes = parseIPv6(ip);
  return bytes && { family: 6, value: bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n) };
}

/**
 * An IPv6 literal (any valid spelling, embedded IPv4 allowed, no zone id) as 16 bytes. Hand-written:
 * Node has no inet_pton (SOCKS5 sends these bytes, the route index and CIDR tests compare them).
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (!net.isIPv6(text) || text.includes('%')) return undefined;
  let spelled = text;
  const lastColon = spelled.lastIndexOf(':');
  const tail = spelled.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    spelled = `${spelled.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = spelled.split('::');
  const left = halves[0] ? halves[0].split(':') : [];
  const right = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const zeros = halves.length > 1 ? 8 - left.length - right.length : 0;
  const groups = [...left, ...Array<string>(zeros).fill('0'), ...right].map((g) => Number.parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** A CIDR as numbers: its network (the address with the host bits cleared, as `net.BlockList` reads it). */
export interface CompiledCidr {
  readonly family: 4 | 6;
  readonly prefix: number;
  readonly network: bigint;
}

/** The network bits of `value` under a prefix of `prefix` bits. */
export function maskIp(family: 4 | 6, value: bigint, prefix: number): bigint {
  const bits = family === 4 ? 32n : 128n;
  const host = bits - BigInt(prefix);
  return (value >> host) << host;
}

// CIDRs come from configuration (grants, routes, allow-lists), so their number is bounded by it; the
// cache is cleared if it ever grows past this rather than evicting one by one.
const CIDR_CACHE_MAX = 10_000;
const compiled = new Map<string, CompiledCidr | null>();

/** `10.0.0.0/8` as numbers, parsed once per text; undefined when not a CIDR. */
export function compileCidr(text: string): CompiledCidr | undefined {
  let c = compiled.get(text);
  if (c === undefined) {
    const p = parseCidr(text);
    const ip = p && ipValue(p.address);
    c = p && ip ? { family: ip.family, prefix: p.prefix, network: maskIp(ip.family, ip.value, p.prefix) } : null;
    if (compiled.size >= CIDR_CACHE_MAX) compiled.clear();
    compiled.set(text, c);
  }
  return c ?? undefined;
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = compileCidr(cidr);
  const v = c && ipValue(ip);
  return Boolean(c && v && v.family === c.family && maskIp(v.family, v.value, c.prefix) === c.network);
}

/** A route: a CIDR (10.20.0.0/16) or a DNS suffix starting with a dot (.corp.internal). */
export function isRoute(r: string): boolean {
  return Boolean(parseCidr(r)) || /^\.[a-z0-9_-]+(\.[a-z0-9_-]+)*$/i.test(r);
}

/** Host pattern: a CIDR (IP hosts only) or a glob (names and IPs). */
export function hostMatches(pattern: string, host: string): boolean {
  return compileCidr(pattern) ? cidrContains(pattern, host) : matchesGlob(pattern, host);
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

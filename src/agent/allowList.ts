/**
 * The agent's own allow-list (--allow): what it will dial, whatever the hub asks. Entries:
 *
 *   localhost            the agent's own host (also 127.0.0.1, ::1 when listed)
 *   *.corp.internal      a glob over host names
 *   10.20.0.0/16         a CIDR; a host *name* is resolved first and its address must fall inside
 *   db.corp.internal:5432,5433   a port list after the last ':' (not for IPv6 CIDRs)
 *   *                    everything
 *
 * The default is the agent's own host plus its advertised routes (a DNS-suffix route `.corp` allows
 * `*.corp`).
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import { matchesGlob, parseCidr, cidrContains, portMatches, parsePorts } from '../shared/patterns.js';

interface Entry {
  readonly host: string;
  readonly cidr: boolean;
  readonly ports: string | undefined;
}

export class AllowList {
  private readonly entries: Entry[];

  constructor(patterns: readonly string[]) {
    this.entries = patterns.map(parseEntry);
  }

  /** Returns the address to dial (the resolved IP when a CIDR entry matched a name), or undefined: refused. */
  async check(host: string, port: number): Promise<string | undefined> {
    const forPort = this.entries.filter((e) => e.ports === undefined || portMatches(e.ports, port));
    if (forPort.some((e) => !e.cidr && matchesGlob(e.host, host))) return host;
    const cidrs = forPort.filter((e) => e.cidr);
    if (cidrs.length === 0) return undefined;
    // Resolve once and dial the address we checked, so a DNS answer cannot change between check and dial.
    const address = net.isIP(host) ? host : await dns.lookup(host).then((r) => r.address, () => undefined);
    if (address === undefined) return undefined;
    return cidrs.some((e) => cidrContains(e.host, address)) ? address : undefined;
  }
}

function parseEntry(pattern: string): Entry {
  if (pattern.startsWith('.')) return { host: `*${pattern}`, cidr: false, ports: undefined };
  if (parseCidr(pattern)) return { host: pattern, cidr: true, ports: undefined };
  const colon = pattern.lastIndexOf(':');
  if (colon > 0 && !net.isIPv6(pattern) && parsePorts(pattern.slice(colon + 1))) {
    const host = pattern.slice(0, colon);
    return { host, cidr: Boolean(parseCidr(host)), ports: pattern.slice(colon + 1) };
  }
  return { host: pattern, cidr: false, ports: undefined };
}

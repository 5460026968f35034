/**
 * Counts, per source address, the connections that have not authenticated yet (TLS handshake or SOCKS5
 * greeting not done), so that one peer cannot hold every pre-authentication place of a port.
 *
 *   10.1.2.3                → "10.1.2.3"
 *   ::ffff:10.1.2.3         → "::ffff:10.1.2.3"    (as the listener reports it)
 *   2001:db8:1:2:aaaa::1    → "2001:db8:1:2::/64"  (one IPv6 host usually holds a whole /64)
 *
 * @module
 */
import net from 'node:net';
import { ipValue } from '../shared/patterns.js';

export class PendingPerSource {
  private readonly counts = new Map<string, number>();
  private readonly held = new Map<net.Socket, string>();

  constructor(private readonly maxPerSource: number) {}

  /**
   * Counts `socket` against its source until release() or its close. False (and nothing counted)
   * when that source already holds its maximum: the caller closes the socket at once.
   */
  admit(socket: net.Socket): boolean {
    const key = sourceKey(socket.remoteAddress ?? '');
    const count = this.counts.get(key) ?? 0;
    if (count >= this.maxPerSource) return false;
    this.counts.set(key, count + 1);
    this.held.set(socket, key);
    socket.once('close', () => this.release(socket));
    return true;
  }

  /** Stops counting `socket` (it authenticated, or went); a second call does nothing. */
  release(socket: net.Socket): void {
    const key = this.held.get(socket);
    if (key === undefined) return;
    this.held.delete(socket);
    const count = this.counts.get(key)! - 1;
    if (count === 0) this.counts.delete(key);
    else this.counts.set(key, count);
  }

  /** Connections counted for the source of `address`. */
  heldBy(address: string): number {
    return this.counts.get(sourceKey(address)) ?? 0;
  }
}

/** The unit a limit applies to: an IPv4 address, or the /64 of an IPv6 one. */
export function sourceKey(address: string): string {
  if (!net.isIPv6(address) || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address)) return address;
  // An IPv6 address without its zone id is one ipValue reads.
  const { value } = ipValue(address.replace(/%.*$/, ''))!;
  const groups = [3, 2, 1, 0].map((i) => ((value >> BigInt(64 + 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(':')}::/64`;
}

/**
 * A gateway agent's source addresses (`warren agent --source-ip IP,…`, design §6): egress rules dial
 * their targets from one of them and ingress rules listen on one of them. The host must own each
 * address (it is on a local interface); the agent checks that at start and refuses to run otherwise,
 * so a typo shows at once rather than as a failed dial later.
 */
import os from 'node:os';
import { WarrenError } from '../shared/errors.js';
import { canonicalIp } from '../shared/hostPort.js';

/** Addresses on this host's interfaces, canonical (IPv6 without zone id). */
export function localAddresses(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(interfaces)) for (const i of list ?? []) out.add(canonicalIp(i.address.split('%')[0]!));
  return out;
}

/** Throws WARREN_E_CONFIG naming the first address the host does not own. */
export function checkOwnedSourceIps(ips: readonly string[], interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>): void {
  const local = localAddresses(interfaces);
  const missing = ips.filter((ip) => !local.has(canonicalIp(ip)));
  if (missing.length === 0) return;
  throw new WarrenError(
    'WARREN_E_CONFIG',
    `--source-ip ${missing.join(',')}: not an address of this host (add it first, e.g. \`ip addr add ${missing[0]}/32 dev eth0\`; addresses here: ${[...local].join(', ')})`,
  );
}

/**
 * `warren forward` specs, read like `ssh -L`: where to listen locally, then the target through the hub.
 *
 *   5432:db.alpha.warren:5432              → listen 127.0.0.1:5432, target db.alpha.warren:5432
 *   127.0.0.1:5432:db.alpha.warren:5432    → the same, the address written out
 *   0.0.0.0:8080:10.20.0.5:80              → every interface (anyone who reaches it uses your token)
 *   *:8080:10.20.0.5:80, :8080:10.20.0.5:80 → the same as 0.0.0.0
 *   [::1]:2222:node1:22                    → IPv6 listen address in brackets
 *   127.0.0.1:0:node1:22                   → a free port; the bound address is printed
 *   2222:[fd00::5]:22                      → IPv6 target in brackets
 *
 * The target is the last HOST:PORT (so a target never needs quoting); what comes before it is the
 * listen address, a bare port meaning loopback.
 */
import { WarrenError } from '../shared/errors.js';
import { formatHostPort, parseHostPort, parseListen, type HostPort } from '../shared/hostPort.js';

export interface ForwardSpec {
  readonly listen: HostPort;
  /** HOST:PORT as the hub's CONNECT door takes it (IPv6 in brackets). */
  readonly target: string;
}

export function parseForwardSpec(text: string): ForwardSpec {
  const m = /^(.+):(\[[^\]]+\]|[^:[\]]+):(\d+)$/.exec(text.trim());
  if (!m) throw usage(text, 'expected [LOCAL_ADDR:]LOCAL_PORT:HOST:PORT');
  const target = parseHostPort(`${m[2]}:${m[3]}`);
  if (!target) throw usage(text, `"${m[2]}:${m[3]}" is not a valid HOST:PORT target`);
  const local = m[1]!;
  const listen = /^\d+$/.test(local) ? parseListen(local, '127.0.0.1') : parseListen(local.replace(/^\*:/, '0.0.0.0:'));
  if (!listen) throw usage(text, `"${local}" is not a local PORT or ADDR:PORT`);
  return { listen, target: formatHostPort(target) };
}

function usage(text: string, why: string): WarrenError {
  return new WarrenError('WARREN_E_USAGE', `forward "${text}": ${why} (e.g. 127.0.0.1:5432:db.alpha.warren:5432)`);
}

/** Loopback addresses, where a listener without authentication is reachable only from this host. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The agent's side of a CONNECT stream: check the target against the allow-list, dial it, answer the
 * hub with 200 or a refusal that says why (`warren-error` + `warren-message`), then relay bytes. A
 * gateway agent dials an egress rule's target from the source address the stream names.
 */
import dns, { type LookupAddress } from 'node:dns';
import net from 'node:net';
import type { ServerHttp2Stream } from 'node:http2';
import { WarrenError, type ErrorCode } from '../shared/errors.js';
import { canonicalIp, formatHostPort, parseHostPort } from '../shared/hostPort.js';
import { relay } from '../tunnel/relay.js';
import { refuseStream } from '../tunnel/refusalHeaders.js';
import type { Logger } from '../shared/log.js';
import type { AllowList } from './allowList.js';

export interface DialerOptions {
  readonly allow: AllowList;
  readonly dialTimeoutMs: number;
  readonly log: Logger;
  /** The addresses this agent may dial from (--source-ip); a stream asking for another is refused. */
  readonly sourceIps: readonly string[];
}

/** How long `localhost`'s addresses are reused before they are looked up again. */
const LOCALHOST_TTL_MS = 60_000;
let localhost: { addresses: LookupAddress[]; at: number } | undefined;

/**
 * net.connect's lookup, with `localhost` — what a target naming the agent's own host (`NODE:22`) dials —
 * answered from the last lookup of it (renewed every minute): getaddrinfo runs on libuv's thread pool,
 * 0.2–0.4 ms of every such connection (docs/benchmarks.md, finding 9), and /etc/hosts, which answers
 * it, hardly changes. Every other name is looked up as net.connect would.
 */
const lookup: net.LookupFunction = (hostname, options, callback) => {
  if (hostname !== 'localhost') {
    dns.lookup(hostname, options, callback);
    return;
  }
  if (localhost && performance.now() - localhost.at < LOCALHOST_TTL_MS) {
    process.nextTick(answer, null, localhost.addresses);
    return;
  }
  dns.lookup(hostname, { ...options, family: 0, all: true }, (err, addresses) => {
    if (!err) localhost = { addresses, at: performance.now() };
    answer(err, addresses);
  });

  function answer(err: NodeJS.ErrnoException | null, all: LookupAddress[]): void {
    const fit = err ? [] : all.filter((a) => !options.family || a.family === options.family);
    if (err || fit.length === 0) return callback(err ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), options.all ? [] : '');
    if (options.all) callback(null, fit);
    else callback(null, fit[0]!.address, fit[0]!.family);
  }
};

function dialError(err: NodeJS.ErrnoException, target: string): WarrenError {
  const map: Record<string, [ErrorCode, string]> = {
    ECONNREFUSED: ['WARREN_E_TARGET_REFUSED', `connection to ${target} refused`],
    ECONNRESET: ['WARREN_E_TARGET_REFUSED', `connection to ${target} reset`],
    ENOTFOUND: ['WARREN_E_TARGET_UNREACHABLE', `host of ${target} not found (DNS)`],
    EAI_AGAIN: ['WARREN_E_TARGET_UNREACHABLE', `host of ${target} could not be resolved (DNS)`],
    EHOSTUNREACH: ['WARREN_E_TARGET_UNREACHABLE', `no route to ${target}`],
    ENETUNREACH: ['WARREN_E_TARGET_UNREACHABLE', `network of ${target} unreachable`],
    ETIMEDOUT: ['WARREN_E_TARGET_TIMEOUT', `connection to ${target} timed out`],
  };
  const [code, message] = map[err.code ?? ''] ?? ['WARREN_E_TARGET_UNREACHABLE', `cannot connect to ${target}: ${err.code ?? err.message}`];
  return new WarrenError(code, `agent: ${message}`);
}

/**
 * Dials `authority` for a CONNECT stream; `sourceIp` (header warren-source-ip, an egress rule) binds the
 * connection's local address to one of the agent's --source-ip addresses.
 */
export async function handleConnectStream(stream: ServerHttp2Stream, authority: string, opts: DialerOptions, sourceIp?: string): Promise<void> {
  const target = parseHostPort(authority);
  if (!target) return refuseStream(stream, new WarrenError('WARREN_E_BAD_TARGET', `agent: "${authority.slice(0, 200)}" is not HOST:PORT`));
  const shown = formatHostPort(target);
  const localAddress = sourceIp === undefined ? undefined : opts.sourceIps.find((ip) => ip === canonicalIp(sourceIp));
  if (sourceIp !== undefined && localAddress === undefined) {
    const mine = opts.sourceIps.length ? opts.sourceIps.join(',') : 'none';
    return refuseStream(stream, new WarrenError('WARREN_E_AGENT_REFUSED', `agent refuses to dial from ${sourceIp.slice(0, 64)}: not one of its --source-ip addresses (${mine})`));
  }
  const address = await opts.allow.check(target.host, target.port);
  if (address === undefined) {
    opts.log.info({ target: shown }, 'refused by allow-list');
    return refuseStream(stream, new WarrenError('WARREN_E_AGENT_REFUSED', `agent refuses ${shown}: not in its allow-list (--allow)`));
  }
  const socket = net.connect({
    host: address, port: target.port, allowHalfOpen: true, noDelay: true, lookup,
    ...(localAddress === undefined ? { autoSelectFamily: true } : { localAddress, family: net.isIP(localAddress) }),
  });
  const connected = await new Promise<WarrenError | undefined>((resolve) => {
    // The listeners outlive the dial (every stream closes eventually): build an error only while it
    // still decides the outcome (an Error captures a stack trace; measurable per connection).
    let decided = false;
    const decide = (outcome: () => WarrenError | undefined) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      resolve(outcome());
    };
    const timer = setTimeout(() => decide(() => new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent: no connection to ${shown} within ${opts.dialTimeoutMs} ms`)), opts.dialTimeoutMs);
    socket.once('connect', () => decide(() => undefined));
    socket.once('error', (err) => decide(() => dialError(err, shown)));
    stream.once('close', () => decide(() => new WarrenError('WARREN_E_TUNNEL_LOST', 'hub cancelled the stream')));
  });
  if (connected) {
    socket.destroy();
    return refuseStream(stream, connected);
  }
  if (stream.destroyed) {
    socket.destroy();
    return;
  }
  stream.respond({ ':status': 200 });
  const counts = await relay(stream, socket);
  opts.log.debug({ target: shown, bytesIn: counts.aToB, bytesOut: counts.bToA, error: counts.error?.message }, 'stream closed');
}

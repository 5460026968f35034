/**
 * SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929), as bytes in and bytes out.
 *
 * Pure: no sockets, timers or state. Each parser looks at the start of a buffer that may still be
 * growing and answers `incomplete` (feed me more), `ok` (a whole message, and how many bytes it used:
 * anything after it belongs to the next message or to the tunnelled stream) or `error` (never a
 * throw). The hub's SOCKS5 door, `warren socks` and the tests all share this file.
 *
 * Wire grammar, in hex; `|` separates fields, ports are big-endian.
 *
 * ```text
 * greeting          client → server   VER=05 | NMETHODS (1..255) | METHOD × NMETHODS
 *   05 01 02                            offers username/password only
 *   05 02 00 02                         offers "no authentication" and username/password
 * method selection  server → client   VER=05 | METHOD        (00 none, 02 user/pass, FF no acceptable)
 *   05 02
 * user/pass         client → server   VER=01 | ULEN (0..255) | UNAME | PLEN (1..255) | PASSWD
 *   01 05 616c696365 03 746f6b          user "alice", password "tok"
 * user/pass status  server → client   VER=01 | STATUS        (00 success, anything else failure)
 *   01 00
 * request           client → server   VER=05 | CMD | RSV=00 | ATYP | DST.ADDR | DST.PORT
 *   CMD  01 CONNECT, 02 BIND, 03 UDP ASSOCIATE
 *   ATYP 01 IPv4, 4 bytes
 *     05 01 00 01 7f000001 0016                               CONNECT 127.0.0.1:22
 *   ATYP 03 domain: LEN (1..255) then LEN bytes of printable ASCII
 *     05 01 00 03 0c 616c7068612e77617272656e 0016            CONNECT alpha.warren:22
 *   ATYP 04 IPv6, 16 bytes
 *     05 01 00 04 00000000000000000000000000000001 01bb       CONNECT [::1]:443
 * reply             server → client   VER=05 | REP | RSV=00 | ATYP | BND.ADDR | BND.PORT
 *   05 00 00 01 00000000 0000                                 succeeded, bound 0.0.0.0:0
 *   05 04 00 01 00000000 0000                                 host unreachable
 * ```
 *
 * Choices beyond the RFCs, and why:
 * - ULEN 0 is accepted: clients given `socks5h://:TOKEN@hub` (curl among them) send an empty username.
 *   PLEN 0 is refused: the password is the access token (the door joins username and password for a
 *   token longer than 255 bytes, split across the two fields).
 * - Domain names must be printable ASCII (21..7E): a host name never needs more (IDNs travel as
 *   punycode), and control bytes would otherwise reach the router, the audit trail and the logs.
 * - Problems with the target itself (empty or unprintable domain, port 0 on CONNECT) answer with the
 *   reply the error registry gives WARREN_E_BAD_TARGET, so a client sees the same byte whether the
 *   codec or the router refused the target.
 * - IPv6 addresses are rendered in the RFC 5952 §4 canonical form (lowercase, leading zeros dropped,
 *   the longest run of two or more zero groups as `::`), the same text WHATWG URL serialises, so one
 *   address always yields one target string. IPv4-mapped addresses stay hex (`::ffff:a00:1`).
 * - Checks run in byte order, each as soon as its bytes are present: a prefix of a message is either
 *   `incomplete` or already the final answer, so feeding a message byte by byte gives the same result
 *   as feeding it whole, and a reader can stop at the first bad byte.
 *
 * Encoders throw a RangeError on input the wire cannot carry or the parser would refuse, so every
 * encoded message parses back to what was encoded.
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import { isIPv4 } from 'node:net';
import { ErrorCodes, SocksReply } from '../shared/errors.js';
import { parseIPv6 } from '../shared/patterns.js';

export const SOCKS_VERSION = 0x05;
export const USERPASS_VERSION = 0x01;

/** RFC 1928 §3 authentication methods. */
export const Socks5Method = {
  noAuth: 0x00,
  gssapi: 0x01,
  userPass: 0x02,
  noAcceptable: 0xff,
} as const;

/** RFC 1928 §4 commands. */
export const Socks5Command = {
  connect: 0x01,
  bind: 0x02,
  udpAssociate: 0x03,
} as const;

/** RFC 1928 §5 address types. */
export const Socks5AddressType = {
  ipv4: 0x01,
  domain: 0x03,
  ipv6: 0x04,
} as const;

/** Longest messages the grammar allows; anything longer is trailing data. */
export const MAX_GREETING_BYTES = 2 + 255;
export const MAX_USERPASS_BYTES = 3 + 255 + 255;
export const MAX_REQUEST_BYTES = 4 + 1 + 255 + 2;

export type ParseResult<T> =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'ok'; readonly value: T; readonly consumed: number }
  /**
   * `reply` is the byte to answer with in this exchange's reply message (METHOD for a greeting,
   * STATUS for user/pass, REP for a request) when the peer spoke enough SOCKS5 for an answer to make
   * sense; absent means "just close".
   */
  | { readonly kind: 'error'; readonly reason: string; readonly reply?: number };

export type CommandName = 'connect' | 'bind' | 'udp-associate';
export type AddressType = 'ipv4' | 'ipv6' | 'domain';

export interface Greeting {
  /** Offered methods, in the client's order (duplicates kept). */
  readonly methods: readonly number[];
}

export interface UserPass {
  /** Informational only; may be empty. */
  readonly username: string;
  /** The access token. Never log it. */
  readonly password: string;
}

export interface Socks5Request {
  /** A known command by name, any other CMD byte as its number (the door answers 07). */
  readonly command: CommandName | number;
  /** Dotted quad, canonical IPv6 (no brackets) or the domain exactly as sent. */
  readonly host: string;
  readonly port: number;
  readonly addressType: AddressType;
}

export interface MethodSelection {
  readonly method: number;
}

export interface UserPassStatus {
  readonly ok: boolean;
  readonly status: number;
}

export interface Socks5Reply {
  readonly reply: number;
  readonly host: string;
  readonly port: number;
  readonly addressType: AddressType;
}

const INCOMPLETE = Object.freeze({ kind: 'incomplete' as const });

function fail(reason: string, reply?: number): ParseResult<never> {
  return reply === undefined ? { kind: 'error', reason } : { kind: 'error', reason, reply };
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/** Reads byte `i`; callers check `i < buf.length` first (kept apart so indexing stays typed). */
function at(buf: Uint8Array, i: number): number {
  return buf[i] ?? 0;
}

// ---------------------------------------------------------------------------------------------------
// Server side: what a client sends.

/** `VER=05 | NMETHODS | METHODS…`. */
export function parseGreeting(buf: Uint8Array): ParseResult<Greeting> {
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== SOCKS_VERSION) return fail(`greeting version ${hex(version)} is not SOCKS5 (0x05)`);
  if (buf.length < 2) return INCOMPLETE;
  const count = at(buf, 1);
  if (count === 0) return fail('greeting offers no authentication methods', Socks5Method.noAcceptable);
  const end = 2 + count;
  if (buf.length < end) return INCOMPLETE;
  return { kind: 'ok', value: { methods: Array.from(buf.subarray(2, end)) }, consumed: end };
}

/** RFC 1929: `VER=01 | ULEN | UNAME | PLEN | PASSWD`. */
export function parseUserPass(buf: Uint8Array): ParseResult<UserPass> {
  const failure = 0x01;
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== USERPASS_VERSION) {
    return fail(`username/password version ${hex(version)} is not 0x01`, failure);
  }
  if (buf.length < 2) return INCOMPLETE;
  const ulen = at(buf, 1);
  const plenAt = 2 + ulen;
  if (buf.length < plenAt + 1) return INCOMPLETE;
  const plen = at(buf, plenAt);
  if (plen === 0) return fail('empty password: the access token goes in the password field', failure);
  const end = plenAt + 1 + plen;
  if (buf.length < end) return INCOMPLETE;
  const username = Buffer.from(buf.subarray(2, plenAt)).toString('utf8');
  const password = Buffer.from(buf.subarray(plenAt + 1, end)).toString('utf8');
  return { kind: 'ok', value: { username, password }, consumed: end };
}

/** `VER=05 | CMD | RSV=00 | ATYP | DST.ADDR | DST.PORT`. */
export function parseRequest(buf: Uint8Array): ParseResult<Socks5Request> {
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== SOCKS_VERSION) return fail(`request version ${hex(version)} is not SOCKS5 (0x05)`);
  if (buf.length < 2) return INCOMPLETE;
  const cmd = at(buf, 1);
  const address = parseAddressAndPort(buf, 'request');
  if (address.kind !== 'ok') return address;
  const { host, port, addressType } = address.value;
  if (cmd === Socks5Command.connect && port === 0) {
    return fail('CONNECT to port 0: the port must be from 1 to 65535', ErrorCodes.WARREN_E_BAD_TARGET.socks);
  }
  return { kind: 'ok', value: { command: commandName(cmd), host, port, addressType }, consumed: address.consumed };
}

// ---------------------------------------------------------------------------------------------------
// Client side: what a server answers. Used by `warren socks` toward an upstream and by the tests.

/** `VER=05 | METHOD`. */
export function parseMethodSelection(buf: Uint8Array): ParseResult<MethodSelection> {
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== SOCKS_VERSION) return fail(`method selection version ${hex(version)} is not SOCKS5 (0x05)`);
  if (buf.length < 2) return INCOMPLETE;
  return { kind: 'ok', value: { method: at(buf, 1) }, consumed: 2 };
}

/** RFC 1929: `VER=01 | STATUS`. */
export function parseUserPassStatus(buf: Uint8Array): ParseResult<UserPassStatus> {
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== USERPASS_VERSION) return fail(`username/password status version ${hex(version)} is not 0x01`);
  if (buf.length < 2) return INCOMPLETE;
  const status = at(buf, 1);
  return { kind: 'ok', value: { ok: status === 0x00, status }, consumed: 2 };
}

/** `VER=05 | REP | RSV=00 | ATYP | BND.ADDR | BND.PORT`. Port 0 is normal here (unspecified). */
export function parseReply(buf: Uint8Array): ParseResult<Socks5Reply> {
  if (buf.length < 1) return INCOMPLETE;
  const version = at(buf, 0);
  if (version !== SOCKS_VERSION) return fail(`reply version ${hex(version)} is not SOCKS5 (0x05)`);
  if (buf.length < 2) return INCOMPLETE;
  const reply = at(buf, 1);
  const address = parseAddressAndPort(buf, 'reply');
  if (address.kind !== 'ok') return address.kind === 'error' ? fail(address.reason) : address;
  return { kind: 'ok', value: { reply, ...address.value }, consumed: address.consumed };
}

interface AddressAndPort {
  readonly host: string;
  readonly port: number;
  readonly addressType: AddressType;
}

/** `RSV=00 | ATYP | ADDR | PORT` starting at offset 2, shared by requests and replies. */
function parseAddressAndPort(buf: Uint8Array, what: string): ParseResult<AddressAndPort> {
  if (buf.length < 3) return INCOMPLETE;
  const reserved = at(buf, 2);
  if (reserved !== 0x00) {
    return fail(`${what} reserved byte is ${hex(reserved)}, must be 0x00`, SocksReply.generalFailure);
  }
  if (buf.length < 4) return INCOMPLETE;
  const atyp = at(buf, 3);
  let host: string;
  let addressType: AddressType;
  let portAt: number;
  switch (atyp) {
    case Socks5AddressType.ipv4:
      portAt = 4 + 4;
      if (buf.length < portAt) return INCOMPLETE;
      host = `${at(buf, 4)}.${at(buf, 5)}.${at(buf, 6)}.${at(buf, 7)}`;
      addressType = 'ipv4';
      break;
    case Socks5AddressType.ipv6:
      portAt = 4 + 16;
      if (buf.length < portAt) return INCOMPLETE;
      host = formatIPv6(buf.subarray(4, portAt));
      addressType = 'ipv6';
      break;
    case Socks5AddressType.domain: {
      if (buf.length < 5) return INCOMPLETE;
      const length = at(buf, 4);
      if (length === 0) return fail(`${what} domain name is empty`, ErrorCodes.WARREN_E_BAD_TARGET.socks);
      portAt = 5 + length;
      // Checked byte by byte as they arrive so a prefix already carries the final verdict.
      const present = Math.min(buf.length, portAt);
      for (let i = 5; i < present; i++) {
        const c = at(buf, i);
        if (c < 0x21 || c > 0x7e) {
          return fail(
            `${what} domain name has byte ${hex(c)} at offset ${i - 5}; only printable ASCII is allowed`,
            ErrorCodes.WARREN_E_BAD_TARGET.socks,
          );
        }
      }
      if (buf.length < portAt) return INCOMPLETE;
      host = Buffer.from(buf.subarray(5, portAt)).toString('latin1');
      addressType = 'domain';
      break;
    }
    default:
      return fail(`${what} address type ${hex(atyp)} is not 0x01, 0x03 or 0x04`, SocksReply.addressTypeNotSupported);
  }
  const end = portAt + 2;
  if (buf.length < end) return INCOMPLETE;
  const port = (at(buf, portAt) << 8) | at(buf, portAt + 1);
  return { kind: 'ok', value: { host, port, addressType }, consumed: end };
}

function commandName(cmd: number): CommandName | number {
  switch (cmd) {
    case Socks5Command.connect:
      return 'connect';
    case Socks5Command.bind:
      return 'bind';
    case Socks5Command.udpAssociate:
      return 'udp-associate';
    default:
      return cmd;
  }
}

function commandByte(command: CommandName | number): number {
  switch (command) {
    case 'connect':
      return Socks5Command.connect;
    case 'bind':
      return Socks5Command.bind;
    case 'udp-associate':
      return Socks5Command.udpAssociate;
    default:
      return checkByte(command, 'command');
  }
}

// ---------------------------------------------------------------------------------------------------
// Encoders.

/** Server → client: `05 METHOD`. */
export function encodeMethodSelection(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, checkByte(method, 'method')]);
}

/** Server → client, RFC 1929: `01 00` on success, `01 01` on failure. */
export function encodeUserPassStatus(ok: boolean): Buffer {
  return Buffer.from([USERPASS_VERSION, ok ? 0x00 : 0x01]);
}

/** Server → client: `05 REP 00 ATYP BND.ADDR BND.PORT`; the bound address defaults to 0.0.0.0:0. */
export function encodeReply(reply: number, bound: { host: string; port: number } = { host: '0.0.0.0', port: 0 }): Buffer {
  return Buffer.concat([
    Buffer.from([SOCKS_VERSION, checkByte(reply, 'reply'), 0x00]),
    encodeAddressAndPort(bound.host, bound.port),
  ]);
}

/** Client → server: `05 NMETHODS METHODS…`. */
export function encodeGreeting(methods: readonly number[]): Buffer {
  if (methods.length < 1 || methods.length > 255) {
    throw new RangeError(`a greeting offers 1 to 255 methods, not ${methods.length}`);
  }
  return Buffer.from([SOCKS_VERSION, methods.length, ...methods.map((m) => checkByte(m, 'method'))]);
}

/** Client → server, RFC 1929. Lengths are in UTF-8 bytes: username 0..255, password 1..255. */
export function encodeUserPass(username: string, password: string): Buffer {
  const user = Buffer.from(username, 'utf8');
  const pass = Buffer.from(password, 'utf8');
  if (user.length > 255) throw new RangeError(`the username is ${user.length} bytes; at most 255 fit`);
  if (pass.length < 1 || pass.length > 255) {
    throw new RangeError(`the password is ${pass.length} bytes; it must be 1 to 255`);
  }
  return Buffer.concat([Buffer.from([USERPASS_VERSION, user.length]), user, Buffer.from([pass.length]), pass]);
}

/**
 * Client → server. ATYP follows the host: a dotted quad is IPv4, an IPv6 literal (brackets allowed,
 * zone ids not) is IPv6, anything else is sent as a domain name for the hub to route.
 */
export function encodeRequest(request: { command: CommandName | number; host: string; port: number }): Buffer {
  const cmd = commandByte(request.command);
  if (cmd === Socks5Command.connect && request.port === 0) {
    throw new RangeError('CONNECT needs a port from 1 to 65535');
  }
  return Buffer.concat([Buffer.from([SOCKS_VERSION, cmd, 0x00]), encodeAddressAndPort(request.host, request.port)]);
}

function encodeAddressAndPort(host: string, port: number): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`port ${port} is not an integer from 0 to 65535`);
  }
  const portBytes = [port >> 8, port & 0xff];
  if (isIPv4(host)) {
    return Buffer.from([Socks5AddressType.ipv4, ...host.split('.').map(Number), ...portBytes]);
  }
  const literal = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const v6 = parseIPv6(literal);
  if (v6) return Buffer.from([Socks5AddressType.ipv6, ...v6, ...portBytes]);
  const name = Buffer.from(host, 'latin1');
  if (name.length < 1 || name.length > 255) {
    throw new RangeError(`a domain name is 1 to 255 bytes, not ${name.length}`);
  }
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new RangeError(`the domain name has character code ${c}; only printable ASCII is allowed`);
  }
  return Buffer.concat([Buffer.from([Socks5AddressType.domain, name.length]), name, Buffer.from(portBytes)]);
}

function checkByte(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`${what} ${value} is not a byte (0 to 255)`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// IPv6 text ↔ bytes.

/** RFC 5952 §4: lowercase hex, no leading zeros, the first longest run of ≥ 2 zero groups as `::`. */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((at(bytes, i) << 8) | at(bytes, i + 1));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed (§4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const text = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return text(0, 8);
  return `${text(0, bestStart)}::${text(bestStart + bestLength, 8)}`;
}

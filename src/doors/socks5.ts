/**
 * The SOCKS5 door (RFC 1928 CONNECT with RFC 1929 username/password, where the password is a Warren
 * access token). It takes an accepted socket; the hub owns the listener.
 *
 * The handshake reads the socket one byte at a time in paused mode, so it never takes a byte past the
 * end of the request: whatever the client pipelined after it (optimistic clients send greeting,
 * credentials, request and the first payload in one segment) stays in the socket's own buffer for the
 * relay. Draining and unshifting instead breaks when the client's FIN is already in: the socket emits
 * 'end' as soon as its buffer is empty, and unshift after 'end' throws. Handshakes are a few hundred
 * bytes, so the byte-wise reads cost nothing that matters.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { asWarrenError, SocksReply } from '../shared/errors.js';
import { formatHostPort, formatSource } from '../shared/hostPort.js';
import { logFailure, newRequestId, type FailureLog } from '../shared/failureLog.js';
import type { Authenticator, Opener, OpenedStream, Principal } from './door.js';
import {
  encodeMethodSelection,
  encodeReply,
  encodeUserPassStatus,
  parseGreeting,
  parseRequest,
  parseUserPass,
  Socks5Method,
  type ParseResult,
} from './socks5Codec.js';

/** The part of a pino logger the door uses. */
export interface DoorLog extends FailureLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

export interface Socks5Deps {
  readonly opener: Opener;
  readonly authenticator: Authenticator;
  readonly log?: DoorLog;
  /** From accept to a complete request; a client still mid-handshake then is destroyed. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /**
   * When set, a client offering "no authentication" (0x00) is accepted as this principal. Only for a
   * listener whose access is controlled some other way: `warren socks` on loopback, where every
   * connection carries the token of the person who started it. Never set on the hub.
   */
  readonly noAuthPrincipal?: Principal;
  /** Called once the request has been read: the pre-authentication phase is over (not called for a client refused or gone before). */
  readonly onHandshakeEnd?: () => void;
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const silentLog: DoorLog = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Serves one SOCKS5 client on `socket` until its stream ends. Resolves when the client is done (relay
 * finished, or the client refused and the socket closing); never rejects.
 *
 * Half-close is carried end to end: the door sets `socket.allowHalfOpen`, so a client that shuts down
 * its sending side still receives the target's answer even if the listener was created without it.
 */
export async function handleSocks5(socket: Socket, deps: Socks5Deps): Promise<void> {
  const log = deps.log ?? silentLog;
  // Names this connection in the log line of a failure; a SOCKS5 reply has no room to carry it.
  const streamId = newRequestId();
  const timeoutMs = deps.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const source = formatSource(socket);
  socket.allowHalfOpen = true;
  // A reset from the client must not become an uncaught 'error'; the relay adds its own handling.
  socket.on('error', (err: NodeJS.ErrnoException) => log.debug({ source, err: err.code ?? err.message }, 'socks5 client socket error'));

  const handshakeTimer = setTimeout(() => {
    log.info({ source, timeoutMs }, 'socks5 handshake timed out; closing');
    socket.destroy();
  }, timeoutMs);
  handshakeTimer.unref();

  try {
    await serve({ socket, deps, log, source, streamId, timeoutMs, handshakeTimer });
  } catch (err) {
    // Nothing in serve() is expected to throw; this keeps the promise from ever rejecting if it does.
    logFailure(log, err, { requestId: streamId, door: 'socks5', source });
    socket.destroy();
  } finally {
    clearTimeout(handshakeTimer);
  }
}

interface Session {
  readonly socket: Socket;
  readonly deps: Socks5Deps;
  readonly log: DoorLog;
  /** The client's address for logs and the audit trail. */
  readonly source: string;
  readonly streamId: string;
  readonly timeoutMs: number;
  readonly handshakeTimer: NodeJS.Timeout;
}

/** Handshake, then CONNECT and relay. Refusals answer and close; nothing here throws by design. */
async function serve(session: Session): Promise<void> {
  const principal = await authenticate(session);
  if (principal === undefined) return;
  const { socket, deps, log, source, streamId, timeoutMs, handshakeTimer } = session;

  const request = await readMessage(socket, parseRequest);
  if (request.kind === 'closed') return;
  clearTimeout(handshakeTimer);
  deps.onHandshakeEnd?.();
  if (request.kind === 'error') {
    log.info({ source, user: principal.user, reason: request.reason }, 'socks5 request refused');
    refuse(socket, request.reply === undefined ? undefined : encodeReply(request.reply), timeoutMs);
    return;
  }
  const { command, host, port } = request.value;
  const target = formatHostPort({ host, port });
  if (command !== 'connect') {
    log.info({ source, user: principal.user, command, target }, 'socks5 command not supported');
    refuse(socket, encodeReply(SocksReply.commandNotSupported), timeoutMs);
    return;
  }

  // Dialling through the tunnel takes a while; a client that resets meanwhile aborts it (the opener
  // watches its early-data client). A FIN does not: a client may half-close right after its request
  // and still want the answer.
  let opened: OpenedStream;
  try {
    opened = await deps.opener.open({ target, principal, door: 'socks5', source, early: socket });
  } catch (err) {
    const failure = logFailure(log, err, { requestId: streamId, door: 'socks5', source, user: principal.user, target });
    if (failure.status < 500) log.info({ source, user: principal.user, target, code: failure.code, reason: failure.message }, 'socks5 connect refused');
    refuse(socket, encodeReply(failure.socks), timeoutMs);
    return;
  }
  if (socket.destroyed) {
    log.debug({ source, user: principal.user, target }, 'socks5 client left while the stream was opening');
    opened.stream.destroy();
    return;
  }

  socket.write(encodeReply(SocksReply.succeeded));
  try {
    const result = await opened.relay(socket);
    log.debug({ source, user: principal.user, target, agent: opened.agent, ...result }, 'socks5 stream ended');
  } catch (err) {
    log.warn({ source, user: principal.user, target, code: asWarrenError(err).code }, 'socks5 relay failed');
    socket.destroy();
    opened.stream.destroy();
  }
}

/**
 * Method negotiation (0x02, or 0x00 when `noAuthPrincipal` is set) and RFC 1929 credentials. The caller's principal, or
 * undefined once the client has been refused or has gone.
 */
async function authenticate(session: Session): Promise<Principal | undefined> {
  const { socket, deps, log, source, timeoutMs } = session;
  const greeting = await readMessage(socket, parseGreeting);
  if (greeting.kind === 'closed') return undefined;
  if (greeting.kind === 'error') {
    log.debug({ source, reason: greeting.reason }, 'socks5 greeting refused');
    refuse(socket, greeting.reply === undefined ? undefined : encodeMethodSelection(greeting.reply), timeoutMs);
    return undefined;
  }
  if (deps.noAuthPrincipal !== undefined && greeting.value.methods.includes(Socks5Method.noAuth)) {
    socket.write(encodeMethodSelection(Socks5Method.noAuth));
    return deps.noAuthPrincipal;
  }
  if (!greeting.value.methods.includes(Socks5Method.userPass)) {
    log.debug({ source, methods: greeting.value.methods }, 'socks5 client does not offer username/password');
    refuse(socket, encodeMethodSelection(Socks5Method.noAcceptable), timeoutMs);
    return undefined;
  }
  socket.write(encodeMethodSelection(Socks5Method.userPass));

  const credentials = await readMessage(socket, parseUserPass);
  if (credentials.kind === 'closed') return undefined;
  if (credentials.kind === 'error') {
    log.info({ source, reason: credentials.reason }, 'socks5 authentication refused');
    refuse(socket, encodeUserPassStatus(false), timeoutMs);
    return undefined;
  }
  let principal: Principal;
  try {
    // Only the password counts. The username is not logged either: a misconfigured client
    // (`socks5h://TOKEN@hub`) puts the token there.
    principal = await deps.authenticator.fromToken(credentials.value.password, 'socks5');
  } catch (err) {
    // WarrenError messages never carry secrets; anything else becomes a generic WARREN_E_INTERNAL.
    const failure = asWarrenError(err);
    log.info({ source, code: failure.code, reason: failure.message }, 'socks5 authentication refused');
    refuse(socket, encodeUserPassStatus(false), timeoutMs);
    return undefined;
  }
  if (socket.destroyed) return undefined; // the handshake timer fired while the token was checked
  socket.write(encodeUserPassStatus(true));
  return principal;
}

type ReadOutcome<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'error'; readonly reason: string; readonly reply?: number }
  | { readonly kind: 'closed' };

/**
 * Reads exactly one message: one byte at a time while the parser says incomplete, so nothing after the
 * message leaves the socket's buffer (see the module comment). 'closed' when the client ends, fails or
 * is destroyed (e.g. by the handshake timeout) first.
 */
function readMessage<T>(socket: Socket, parse: (buf: Uint8Array) => ParseResult<T>): Promise<ReadOutcome<T>> {
  return new Promise((resolve) => {
    const bytes: number[] = [];
    const finish = (outcome: ReadOutcome<T>): void => {
      socket.off('readable', onReadable);
      socket.off('end', onGone);
      socket.off('close', onGone);
      resolve(outcome);
    };
    // Nothing to answer a client that left mid-message; destroy so a half-open socket does not linger.
    function onGone(): void {
      socket.destroy();
      finish({ kind: 'closed' });
    }
    function onReadable(): void {
      for (;;) {
        const chunk = socket.read(1) as Buffer | null;
        if (chunk === null) return;
        bytes.push(...chunk);
        const result = parse(Uint8Array.from(bytes));
        if (result.kind === 'ok') return finish({ kind: 'ok', value: result.value });
        if (result.kind === 'error') {
          return finish(result.reply === undefined
            ? { kind: 'error', reason: result.reason }
            : { kind: 'error', reason: result.reason, reply: result.reply });
        }
      }
    }
    if (socket.destroyed || socket.readableEnded) {
      socket.destroy();
      return resolve({ kind: 'closed' });
    }
    socket.on('end', onGone);
    socket.on('close', onGone);
    // Attaching 'readable' switches the socket to paused mode; bytes already buffered (pipelined
    // behind the previous message) are taken at once.
    socket.on('readable', onReadable);
    onReadable();
  });
}

/**
 * Answers (if there is anything to say) and closes gracefully so the answer is not lost to a reset.
 * Unread client bytes are discarded so the client's FIN is seen; a client that never closes its side
 * is destroyed after `lingerMs`.
 */
function refuse(socket: Socket, answer: Uint8Array | undefined, lingerMs: number): void {
  if (socket.destroyed) return;
  socket.resume();
  if (answer) socket.end(answer);
  else socket.end();
  const linger = setTimeout(() => socket.destroy(), lingerMs);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/**
 * The one registry of Warren's error codes. Every refusal a client can see carries one of these codes,
 * the HTTP status it is answered with, and the SOCKS5 reply (RFC 1928 §6) a SOCKS client gets for it.
 * docs/errors.md documents each code; errors.test.ts fails when one is missing there.
 *
 * Messages are written for the person reading them: what went wrong and what to do next. They never
 * contain a secret (tokens, keys): callers pass names and addresses only.
 */

/** RFC 1928 §6 reply codes. */
export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

interface CodeSpec {
  /** HTTP status used by the admin API and the CONNECT door. */
  readonly status: number;
  /** RFC 1928 reply a SOCKS5 client gets. */
  readonly socks: number;
  /** One line for docs/errors.md. */
  readonly summary: string;
}

export const ErrorCodes = {
  WARREN_E_BAD_REQUEST: { status: 400, socks: SocksReply.generalFailure, summary: 'The request is malformed or a field is invalid; the message names the field.' },
  WARREN_E_BAD_TARGET: { status: 400, socks: SocksReply.addressTypeNotSupported, summary: 'The target is not HOST:PORT with a valid host name or IP address and a port from 1 to 65535.' },
  WARREN_E_UNAUTHENTICATED: { status: 401, socks: SocksReply.notAllowed, summary: 'No credentials, or credentials that are malformed, expired, revoked or not signed by this hub. The CONNECT door answers 407.' },
  WARREN_E_FORBIDDEN: { status: 403, socks: SocksReply.notAllowed, summary: 'The caller is authenticated but no grant allows this target or action (default deny).' },
  WARREN_E_CSRF: { status: 403, socks: SocksReply.notAllowed, summary: 'A state-changing request made with the web UI session cookie lacks the session\'s CSRF token (header x-csrf-token) or comes from another origin.' },
  WARREN_E_NOT_FOUND: { status: 404, socks: SocksReply.generalFailure, summary: 'The named object (agent, grant, join token, route) does not exist.' },
  WARREN_E_METHOD_NOT_ALLOWED: { status: 405, socks: SocksReply.commandNotSupported, summary: 'The HTTP method is not supported on this path.' },
  WARREN_E_CONFLICT: { status: 409, socks: SocksReply.generalFailure, summary: 'The object already exists or is in a state that does not allow the change.' },
  WARREN_E_PAYLOAD_TOO_LARGE: { status: 413, socks: SocksReply.generalFailure, summary: 'The request body or headers exceed the hub limit.' },
  WARREN_E_JOIN_TOKEN_INVALID: { status: 401, socks: SocksReply.notAllowed, summary: 'The join token is malformed, unknown or its secret does not match.' },
  WARREN_E_JOIN_TOKEN_EXPIRED: { status: 401, socks: SocksReply.notAllowed, summary: 'The join token has expired; create a new one with `warren join-token create`.' },
  WARREN_E_JOIN_TOKEN_USED_UP: { status: 401, socks: SocksReply.notAllowed, summary: 'The join token has been used as many times as it allows; create a new one.' },
  WARREN_E_AGENT_NAME_TAKEN: { status: 409, socks: SocksReply.generalFailure, summary: 'Another agent already holds this name; remove it with `warren agents rm` or pick another --name.' },
  WARREN_E_AGENT_CLAIM_DENIED: { status: 403, socks: SocksReply.notAllowed, summary: "The agent claims a name, cluster or route its join token does not allow; the message names the claim and the `warren join-token create` flag that would allow it." },
  WARREN_E_AGENT_REVOKED: { status: 403, socks: SocksReply.notAllowed, summary: 'The agent certificate was revoked (the agent was removed) or replaced; join again with a new token.' },
  WARREN_E_UNKNOWN_TARGET: { status: 502, socks: SocksReply.hostUnreachable, summary: 'No agent serves this host: it is not NAME.<agent>.warren, not an agent name, and not in any advertised route.' },
  WARREN_E_AGENT_OFFLINE: { status: 503, socks: SocksReply.networkUnreachable, summary: 'The agent that serves this host is known but has no open tunnel right now.' },
  WARREN_E_AGENT_REFUSED: { status: 403, socks: SocksReply.notAllowed, summary: "The agent's own allow-list (--allow) does not permit this target." },
  WARREN_E_TARGET_REFUSED: { status: 502, socks: SocksReply.connectionRefused, summary: 'The agent reached the host but the connection was refused (nothing listens on that port).' },
  WARREN_E_TARGET_UNREACHABLE: { status: 502, socks: SocksReply.hostUnreachable, summary: 'The agent could not resolve or reach the host.' },
  WARREN_E_SSH_AUTH: { status: 403, socks: SocksReply.notAllowed, summary: "Web shell: the node's sshd refused the login with the password or key given (the hub's own grant allowed the stream)." },
  WARREN_E_SSH_FAILED: { status: 502, socks: SocksReply.generalFailure, summary: "Web shell: the SSH connection to the node failed (not an SSH server, host key other than the one given, handshake timeout, no shell, or the connection closed before the shell exited)." },
  WARREN_E_TARGET_TIMEOUT: { status: 504, socks: SocksReply.ttlExpired, summary: 'The agent did not get a connection to the target within the dial timeout.' },
  WARREN_E_LISTEN_FAILED: { status: 409, socks: SocksReply.generalFailure, summary: "A forward's entry could not listen (address in use, no permission, no such local address); shown as the forward's last error in `warren forwards ls`." },
  WARREN_E_TUNNEL_LOST: { status: 502, socks: SocksReply.generalFailure, summary: 'The tunnel to the agent closed while the stream was being opened or used.' },
  WARREN_E_UNAVAILABLE: { status: 503, socks: SocksReply.generalFailure, summary: 'The hub is shutting down or not ready; retry shortly (agents and clients do so by themselves).' },
  WARREN_E_QUOTA: { status: 429, socks: SocksReply.notAllowed, summary: "A stream quota is used up (the principal's open streams or new streams per second, or its fair share of an agent); retry after the Retry-After seconds." },
  WARREN_E_TIMEOUT: { status: 408, socks: SocksReply.generalFailure, summary: 'The client did not send a complete request in time.' },
  WARREN_E_INTERNAL: { status: 500, socks: SocksReply.generalFailure, summary: 'An unexpected error inside Warren; the hub log has the details under the same request id.' },
  WARREN_E_HUB_UNREACHABLE: { status: 502, socks: SocksReply.generalFailure, summary: 'The client could not connect to the hub (CLI and agent side).' },
  WARREN_E_CA_MISMATCH: { status: 502, socks: SocksReply.generalFailure, summary: "The hub's CA does not match the pinned fingerprint: the hub is not the one the token or login names." },
  WARREN_E_CONFIG: { status: 500, socks: SocksReply.generalFailure, summary: 'A configuration value or combination of options is invalid; the process refuses to start.' },
  WARREN_E_USAGE: { status: 400, socks: SocksReply.generalFailure, summary: 'Command-line usage error (exit code 2).' },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ErrorCodes;

export class WarrenError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly socks: number;
  /** Extra JSON-safe fields for the error body (e.g. the host that was not found). Never secrets. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WarrenError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.socks = ErrorCodes[code].socks;
    this.details = details;
  }

  /** The JSON body every HTTP door and API answers with. */
  toJSON(): { code: ErrorCode; message: string } & Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** Any thrown value as a WarrenError; unknown errors become WARREN_E_INTERNAL with a generic message. */
export function asWarrenError(err: unknown): WarrenError {
  if (err instanceof WarrenError) return err;
  return new WarrenError('WARREN_E_INTERNAL', 'internal error', undefined, { cause: err });
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}

/**
 * A refused stream on the wire: the responder answers a CONNECT (or a PUT) with the error's HTTP status
 * and two headers, so the other side can rebuild the same WarrenError (design §7: one code everywhere).
 *
 *   :status 403
 *   warren-error: WARREN_E_AGENT_REFUSED
 *   warren-message: agent refuses 10.0.0.9:22: not in its allow-list (--allow)
 */
import { constants as h2c, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { isErrorCode, type ErrorCode, type WarrenError } from '../shared/errors.js';
import { ERROR_HEADER, MESSAGE_HEADER } from './protocol.js';

/** Longer messages are cut: a peer must not make the other side hold (or log) an unbounded string. */
export const MAX_REFUSAL_MESSAGE = 1000;

export interface StreamRefusal {
  readonly code: ErrorCode;
  readonly message: string;
}

export function encodeRefusalHeaders(err: Pick<WarrenError, 'status' | 'code' | 'message'>): OutgoingHttpHeaders {
  return { ':status': err.status, [ERROR_HEADER]: err.code, [MESSAGE_HEADER]: oneLine(err.message) };
}

/**
 * The refusal a non-200 answer carries. A code outside the registry (a newer peer, or garbage) and a
 * missing message fall back to `fallback`: the caller knows best what an unexplained refusal means.
 */
export function decodeRefusalHeaders(headers: IncomingHttpHeaders, fallback: StreamRefusal): StreamRefusal {
  const code = headers[ERROR_HEADER];
  const message = headers[MESSAGE_HEADER];
  return {
    code: isErrorCode(code) ? code : fallback.code,
    message: typeof message === 'string' && message.length > 0 ? oneLine(message) : fallback.message,
  };
}

/** Answers `stream` with the refusal; a stream that already answered can only be cancelled. */
export function refuseStream(stream: ServerHttp2Stream, err: WarrenError): void {
  if (stream.destroyed) return;
  if (stream.headersSent) return stream.close(h2c.NGHTTP2_CANCEL);
  stream.respond(encodeRefusalHeaders(err), { endStream: true });
}

// Header values cannot carry control characters (respond() would throw); messages are one line by
// construction, this keeps a stray one from turning a refusal into a crash.
function oneLine(s: string): string {
  const flat = s.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return flat.length > MAX_REFUSAL_MESSAGE ? flat.slice(0, MAX_REFUSAL_MESSAGE - 1) + '…' : flat;
}

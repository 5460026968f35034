/**
 * Kubernetes `Status` objects for the errors Warren itself answers on the kube paths, so kubectl and
 * client libraries print them the way they print the API server's own:
 *
 *   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
 *    "message":"cluster alpha has no connected agent","reason":"ServiceUnavailable","code":503}
 *
 * kubectl shows that as `Error from server (ServiceUnavailable): cluster alpha has no connected agent`.
 * `Retry-After` goes with 429 (a Warren quota), as the API server's own priority and fairness sends
 * it: client-go then waits and retries by itself. With a 5xx only when a retry will find things
 * changed (a request whose tunnel died under it: another agent serves the retry), never for a lasting
 * state such as "no connected agent": client-go retries a 5xx that carries one ten times.
 *
 * On discovery paths the message also goes out as a `Warning: 299 - "…"` header: kubectl's discovery
 * step (the first requests to a cluster, before its discovery cache is warm) reads error bodies raw
 * and prints only a generic "the server is currently unable to handle the request", while client-go
 * prints every response's warnings to stderr, so the user still reads why (`Warning: cluster alpha has
 * no connected agent`). Elsewhere kubectl prints the Status itself, and a warning would repeat it.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export interface KubeStatus {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason: string;
  readonly code: number;
}

/** The API server's StatusReason for an HTTP status (apimachinery's metav1.StatusReason values). */
export function reasonFor(code: number): string {
  switch (code) {
    case 400: return 'BadRequest';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 405: return 'MethodNotAllowed';
    case 408: return 'Timeout';
    case 409: return 'Conflict';
    case 413: return 'RequestEntityTooLarge';
    case 429: return 'TooManyRequests';
    case 502: case 503: return 'ServiceUnavailable';
    case 504: return 'Timeout';
    default: return code >= 500 ? 'InternalError' : 'BadRequest';
  }
}

export function kubeStatus(code: number, message: string, reason = reasonFor(code)): KubeStatus {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/G/V`, `/version`, `/openapi/…`), whose errors client-go reads raw. */
export function isDiscoveryPath(path: string): boolean {
  return /^\/api(\/[^/?]+)?\/?(\?|$)|^\/apis(\/[^/?]+){0,2}\/?(\?|$)|^\/(version|openapi)([/?]|$)/.test(path);
}

export function sendStatus(res: ServerResponse, status: KubeStatus, opts: { warning?: boolean; retryAfterS?: number | undefined } = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(status);
  res.writeHead(status.code, {
    'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store',
    ...(opts.warning ? { warning: warningHeader(status.message) } : {}),
    ...(opts.retryAfterS !== undefined ? { 'retry-after': String(opts.retryAfterS) } : {}),
  });
  res.end(body);
}

/** RFC 7234 warn-code 299 as the API server writes it; the text made header-safe (printable ASCII). */
export function warningHeader(message: string): string {
  const text = message.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`);
  return `299 - "${text.slice(0, 500)}"`;
}

/** For an upgrade request, where there is only a socket: one HTTP/1.1 answer, then the socket is closed. */
export function writeStatusToSocket(socket: Duplex, status: KubeStatus, opts: { retryAfterS?: number | undefined } = {}): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(status);
  const retry = opts.retryAfterS !== undefined ? `retry-after: ${opts.retryAfterS}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${status.code} ${status.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${retry}` +
      `cache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The HTTP CONNECT door (RFC 9110 §9.3.6), on the hub's HTTPS port and, with --connect-uds, on a unix
 * socket:
 *
 *   CONNECT node1:22 HTTP/1.1
 *   Host: node1:22
 *   Proxy-Authorization: Bearer <token>          (or Basic base64(any:<token>), or a client cert)
 *
 *   → 200 Connection Established, then raw bytes both ways
 *   → 407 + Proxy-Authenticate when credentials are missing or bad, 403 without a grant,
 *     502 unknown host (JSON body names it), 503 agent offline, 504 dial timeout
 *   Every refusal body is `{code, message, requestId}`; a 5xx is logged under that requestId.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WarrenError } from '../shared/errors.js';
import { formatSource } from '../shared/hostPort.js';
import { logFailure, newRequestId, type FailureLog } from '../shared/failureLog.js';
import type { DoorName, Opener, Principal } from './door.js';

export interface ConnectDoorDeps {
  readonly opener: Opener;
  /** Who the caller is; rejects with WARREN_E_UNAUTHENTICATED. */
  readonly authenticate: (req: IncomingMessage) => Promise<Principal>;
  readonly door?: DoorName;
  /** Where a refusal answered with a 5xx is logged, under the request id its body carries. */
  readonly log: FailureLog;
}

export async function handleConnect(req: IncomingMessage, socket: Duplex, head: Buffer, deps: ConnectDoorDeps): Promise<void> {
  socket.on('error', () => undefined);
  const source = formatSource(req.socket);
  const requestId = newRequestId();
  const failed = (err: unknown) => logFailure(deps.log, err, { requestId, door: deps.door ?? 'connect', source, target: req.url?.slice(0, 300) });
  let principal: Principal;
  try {
    principal = await deps.authenticate(req);
  } catch (err) {
    return refuse(socket, failed(err), requestId, true);
  }
  // Bytes a client sent right behind its request (it did not wait for the 200) are the stream's first.
  if (head.length > 0) socket.unshift(head);
  try {
    const opened = await deps.opener.open({ target: req.url ?? '', principal, door: deps.door ?? 'connect', source, early: socket });
    if (socket.destroyed) {
      opened.stream.destroy();
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    await opened.relay(socket);
  } catch (err) {
    refuse(socket, failed(err), requestId, false);
  }
}

function refuse(socket: Duplex, err: WarrenError, requestId: string, authFailure: boolean): void {
  if (socket.destroyed) return;
  const status = authFailure || err.code === 'WARREN_E_UNAUTHENTICATED' ? 407 : err.status;
  const body = JSON.stringify({ ...err.toJSON(), requestId }) + '\n';
  const extra = status === 407 ? 'Proxy-Authenticate: Bearer realm="warren", Basic realm="warren"\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

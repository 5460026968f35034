/**
 * One CONNECT tunnel through the hub's HTTPS port, as a client: used by `warren connect` and by the
 * client-side doors (`warren socks`, `warren forward`). A refusal becomes the WarrenError the hub sent.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WarrenError, isErrorCode } from '../shared/errors.js';
import { dialHub, type HubEndpoint } from '../tunnel/dialHub.js';

/** Opens a CONNECT tunnel through the hub; resolves with the socket once the hub answered 200. */
export async function openThroughHub(ep: HubEndpoint, token: string, target: string): Promise<{ socket: Duplex; head: Buffer }> {
  const socket = await dialHub(ep);
  return new Promise((resolve, reject) => {
    const req = http.request({
      createConnection: () => socket,
      method: 'CONNECT',
      path: target,
      headers: { host: target, 'proxy-authorization': `Bearer ${token}` },
    });
    req.once('connect', (res, sock, head) => {
      if (res.statusCode === 200) return resolve({ socket: sock, head });
      const chunks: Buffer[] = [head];
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.once('close', () => reject(refusalFrom(res.statusCode ?? 0, Buffer.concat(chunks))));
      // The hub ends its side after the refusal; ours is half-open (allowHalfOpen), so without this
      // 'close' never comes and the caller waits forever (or Node exits 13 on the unsettled promise).
      sock.once('end', () => sock.destroy());
      sock.once('error', () => undefined);
    });
    req.once('error', (err) => reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub closed the connection: ${err.message}`)));
    req.end();
  });
}

function refusalFrom(status: number, body: Buffer): WarrenError {
  try {
    const e = JSON.parse(body.toString('utf8')) as { code?: unknown; message?: unknown };
    if (isErrorCode(e.code) && typeof e.message === 'string') return new WarrenError(e.code, e.message);
  } catch {
    // fall through
  }
  return new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub answered HTTP ${status}`);
}

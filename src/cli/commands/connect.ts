/**
 * `warren connect HOST:PORT`: one stream through the hub on stdin/stdout, for ssh's ProxyCommand.
 * stdin's end half-closes the stream (the target still answers); the command exits when the remote
 * side closes: 0 after a clean end, 1 when the stream breaks or is refused (reason on stderr).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WarrenError, isErrorCode } from '../../errors.js';
import { parseHostPort, formatHostPort } from '../../hostPort.js';
import { dialHub, type HubEndpoint } from '../../client/dialHub.js';

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

export async function runConnect(ep: HubEndpoint, token: string, targetText: string): Promise<number> {
  const target = parseHostPort(targetText);
  if (!target) throw new WarrenError('WARREN_E_USAGE', `"${targetText}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:22)`);
  const { socket, head } = await openThroughHub(ep, token, formatHostPort(target));
  if (head.length) process.stdout.write(head);
  return new Promise<number>((resolve) => {
    let failed: Error | undefined;
    socket.on('error', (err) => (failed ??= err));
    process.stdin.on('error', () => undefined);
    process.stdin.pipe(socket);
    socket.pipe(process.stdout, { end: false });
    // The remote side closing ends the session (ssh semantics), even if stdin is still open.
    socket.once('end', () => socket.end());
    socket.once('close', () => {
      process.stdin.unpipe(socket);
      process.stdin.pause();
      const clean = !failed && socket.readableEnded;
      if (!clean) process.stderr.write(`warren connect: connection to ${formatHostPort(target)} lost: ${failed?.message ?? 'closed before the end of the stream'}\n`);
      process.stdout.write('', () => resolve(clean ? 0 : 1));
    });
  });
}

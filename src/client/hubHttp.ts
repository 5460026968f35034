/**
 * JSON requests to the hub's API over a verified TLS connection, and CA pinning: the hub CA is fetched
 * once over an unverified connection and accepted only if its SHA-256 matches the pin from the join
 * token or login (like kubeadm's discovery-token-ca-cert-hash). Secrets are sent only on verified
 * connections.
 */
import http from 'node:http';
import { WarrenError, isErrorCode } from '../shared/errors.js';
import { fingerprint } from '../pki/certInfo.js';
import { pinsEqual } from '../shared/joinToken.js';
import { dialHub, type HubEndpoint } from '../tunnel/dialHub.js';

export interface HubResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export async function hubRequest(
  ep: HubEndpoint,
  method: string,
  path: string,
  opts: { body?: unknown; token?: string; timeoutMs?: number } = {},
): Promise<HubResponse> {
  const socket = await dialHub(ep, { timeoutMs: opts.timeoutMs });
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  const headers: http.OutgoingHttpHeaders = { host: ep.url.host, accept: 'application/json' };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ createConnection: () => socket, method, path, headers });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.once('error', reject);
    });
    req.once('error', (err) => reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `request to hub failed: ${err.message}`)));
    req.end(payload);
  });
}

/** Parses a JSON answer; a non-2xx answer becomes the WarrenError the hub described. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape of the answer it asked for
export function jsonOrThrow<T>(res: HubResponse): T {
  let body: unknown;
  try {
    body = res.body.length ? JSON.parse(res.body.toString('utf8')) : {};
  } catch {
    throw new WarrenError('WARREN_E_INTERNAL', `hub answered HTTP ${res.status} with a body that is not JSON`);
  }
  if (res.status >= 200 && res.status < 300) return body as T;
  const e = body as { code?: unknown; message?: unknown };
  const code = isErrorCode(e.code) ? e.code : 'WARREN_E_INTERNAL';
  throw new WarrenError(code, typeof e.message === 'string' ? e.message : `hub answered HTTP ${res.status}`);
}

/** Fetches the hub CA and checks it against the pin; returns its PEM. */
export async function fetchPinnedCa(ep: Omit<HubEndpoint, 'ca'>, pin: string): Promise<string> {
  const res = await hubRequest({ ...ep, ca: undefined }, 'GET', '/api/v1/ca');
  if (res.status !== 200) throw new WarrenError('WARREN_E_HUB_UNREACHABLE', `hub at ${ep.url.host} did not serve its CA (HTTP ${res.status})`);
  const pem = res.body.toString('utf8');
  let actual: string;
  try {
    actual = fingerprint(pem);
  } catch {
    throw new WarrenError('WARREN_E_CA_MISMATCH', `hub at ${ep.url.host} served something that is not a certificate`);
  }
  if (!pinsEqual(actual, pin)) {
    throw new WarrenError('WARREN_E_CA_MISMATCH', `hub at ${ep.url.host} has CA ${actual}, not the pinned ${pin}: refusing to trust it`);
  }
  return pem;
}

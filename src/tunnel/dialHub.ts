/**
 * Opens a TLS connection to the hub, directly or through an HTTP(S) proxy (HTTP CONNECT, as
 * HTTPS_PROXY asks), verifying the hub against its CA. Used by agents and by every CLI command.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { WarrenError } from '../shared/errors.js';

export interface HubEndpoint {
  readonly url: URL;
  /** PEM of the hub CA; when absent (and no secureContext) the connection is not verified (only for fetching the CA to pin). */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** CA, certificate and key parsed once by hubSecureContext(), used instead of ca/cert/key; always verifies the hub. */
  readonly secureContext?: tls.SecureContext;
  readonly proxy?: URL;
}

export interface DialOptions {
  readonly alpn?: string[];
  readonly timeoutMs?: number;
}

export function hubPort(url: URL): number {
  return Number(url.port || 443);
}

function hubHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/** HTTPS_PROXY / NO_PROXY as curl reads them: NO_PROXY lists hosts, domain suffixes or `*`. */
export function proxyFor(url: URL, env: { httpsProxy?: string | undefined; noProxy?: string | undefined }): URL | undefined {
  if (!env.httpsProxy) return undefined;
  const host = hubHost(url).toLowerCase();
  for (const raw of (env.noProxy ?? '').split(',')) {
    const entry = raw.trim().toLowerCase().replace(/:\d+$/, '');
    if (!entry) continue;
    if (entry === '*' || host === entry.replace(/^\./, '') || host.endsWith(entry.startsWith('.') ? entry : '.' + entry)) return undefined;
  }
  const proxy = new URL(env.httpsProxy.includes('://') ? env.httpsProxy : `http://${env.httpsProxy}`);
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    throw new WarrenError('WARREN_E_CONFIG', `HTTPS_PROXY must be an http:// or https:// proxy URL, not ${proxy.protocol}`);
  }
  return proxy;
}

function viaProxy(proxy: URL, target: URL, timeoutMs: number): Promise<net.Socket> {
  const headers: Record<string, string> = { host: `${target.hostname}:${hubPort(target)}` };
  if (proxy.username) {
    headers['proxy-authorization'] = 'Basic ' + Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64');
  }
  const req = (proxy.protocol === 'https:' ? https : http).request({
    host: proxy.hostname.replace(/^\[|\]$/g, ''),
    port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)),
    method: 'CONNECT',
    path: `${target.hostname}:${hubPort(target)}`,
    headers,
    timeout: timeoutMs,
  });
  return new Promise((resolve, reject) => {
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        return reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `proxy ${proxy.host} refused CONNECT to ${target.host}: HTTP ${res.statusCode}`));
      }
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error('proxy did not answer in time')));
    req.once('error', (err) => reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `cannot reach proxy ${proxy.host}: ${err.message}`)));
    req.end();
  });
}

/** Parsing CA, certificate and key costs ~2 ms of CPU: a caller that dials often (the agent) keeps the result. */
export function hubSecureContext(pem: Pick<HubEndpoint, 'ca' | 'cert' | 'key'>): tls.SecureContext {
  return tls.createSecureContext({ ca: pem.ca, cert: pem.cert, key: pem.key, minVersion: 'TLSv1.2' });
}

/** OpenSSL's words for "the other side does not speak TLS": a plain HTTP server, or another service. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_UNKNOWN_PROTOCOL']);
const NOT_TLS_HINT = 'it answered without TLS, so it is not a Warren hub port: check the host and port of the hub URL (the one `warren hub` prints)';

export async function dialHub(ep: HubEndpoint, opts: DialOptions = {}): Promise<tls.TLSSocket> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const host = hubHost(ep.url);
  const port = hubPort(ep.url);
  const raw = ep.proxy ? await viaProxy(ep.proxy, ep.url, timeoutMs) : undefined;
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    ...(raw ? { socket: raw } : { host, port }),
    servername: net.isIP(host) ? undefined : host,
    secureContext: ep.secureContext ?? hubSecureContext(ep),
    rejectUnauthorized: ep.ca !== undefined || ep.secureContext !== undefined,
    ALPNProtocols: opts.alpn ?? ['http/1.1'],
    // `warren connect` half-closes toward the hub when stdin ends and keeps reading the answer.
    allowHalfOpen: true,
  };
  const socket = tls.connect(options);
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ECONNREFUSED' ? 'connection refused (is the hub running?)' : NOT_TLS.has(err.code ?? '') ? NOT_TLS_HINT : err.message;
      reject(new WarrenError('WARREN_E_HUB_UNREACHABLE', `cannot connect to hub ${ep.url.host}: ${why}`, undefined, { cause: err }));
    };
    socket.once('error', onError);
  });
}

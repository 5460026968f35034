/**
 * One real TLS handshake on 127.0.0.1 between a server that asks for client certificates (without
 * rejecting them: the caller looks at `authorized`) and a client presenting `client`.
 */
import { once } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { after } from 'node:test';
import { withDeadline } from './proc.js';

export interface TlsEnds {
  /** The server's end: `authorized`, `getPeerCertificate()`. */
  readonly server: tls.TLSSocket;
  readonly client: tls.TLSSocket;
}

export async function tlsPair(opts: {
  readonly caPem: string;
  readonly server: { readonly certPem: string; readonly keyPem: string };
  readonly client?: { readonly certPem: string; readonly keyPem: string };
}): Promise<TlsEnds> {
  const server = tls.createServer({ key: opts.server.keyPem, cert: opts.server.certPem, ca: [opts.caPem], requestCert: true, rejectUnauthorized: false });
  server.listen(0, '127.0.0.1');
  await withDeadline(once(server, 'listening'), 5_000, 'the TLS test server listening');
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>;
  const client = tls.connect({
    port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ca: [opts.caPem],
    ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}),
  });
  const [[serverEnd]] = await withDeadline(Promise.all([accepted, once(client, 'secureConnect')]), 5_000, 'the TLS handshake');
  after(() => (client.destroy(), serverEnd.destroy(), server.close()));
  return { server: serverEnd, client };
}

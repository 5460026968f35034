/**
 * How the load generator reaches the target through each path under test. Every path yields a plain
 * Duplex carrying the bytes to and from the target (`bench/lib/target.ts`), so the tests themselves are
 * the same code for every row of the table.
 *
 *   { kind: 'tcp', host, port }                              direct, relay hop, ssh -R listener, hub forward
 *   { kind: 'connect', tls: { host, port, caPem }, … }       HTTP CONNECT door on the hub's TLS port
 *   { kind: 'connect', uds: '/path', … }                     HTTP CONNECT door on a unix socket
 *   { kind: 'exec', cmd, args, env }                         a process per connection (`warren connect`)
 */
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';

export type Endpoint =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | {
      readonly kind: 'connect';
      readonly tls?: { readonly host: string; readonly port: number; readonly caPem: string };
      readonly uds?: string;
      readonly token?: string;
      readonly target: string;
    }
  | { readonly kind: 'exec'; readonly cmd: string; readonly args: readonly string[]; readonly env?: Record<string, string> };

const contexts = new Map<string, tls.SecureContext>();

/** One context per CA, as a long-lived client would keep it (parsing the CA is not what we measure). */
function contextFor(caPem: string): tls.SecureContext {
  let ctx = contexts.get(caPem);
  if (!ctx) contexts.set(caPem, (ctx = tls.createSecureContext({ ca: caPem })));
  return ctx;
}

/** Opens a stream to the target; errors after that show as an early 'close' (a listener swallows them). */
export async function openEndpoint(ep: Endpoint, timeoutMs = 10_000): Promise<Duplex> {
  const s = ep.kind === 'tcp' ? await openTcp(ep.host, ep.port, timeoutMs) : ep.kind === 'exec' ? openExec(ep) : await openConnect(ep, timeoutMs);
  s.on('error', () => undefined);
  return s;
}

/** Ends our side and waits (bounded) for the peer's end, so processes behind the stream exit cleanly. */
export async function closeGracefully(s: Duplex, timeoutMs = 2_000): Promise<void> {
  if (s.destroyed) return;
  s.resume();
  const closed = new Promise<void>((resolve) => {
    s.once('close', resolve);
    s.once('end', () => setImmediate(resolve));
  });
  s.end();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
  s.destroy();
}

function openTcp(host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => s.destroy(new Error(`connect ${host}:${port} timed out`)), timeoutMs);
    s.once('connect', () => (clearTimeout(timer), s.off('error', reject), resolve(s)));
    s.once('error', (err) => (clearTimeout(timer), reject(err)));
  });
}

function openExec(ep: Extract<Endpoint, { kind: 'exec' }>): Duplex {
  const child = spawn(ep.cmd, [...ep.args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...ep.env } });
  // stderr is kept (bounded) for the error a failed connection reports.
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => void (stderr = (stderr + c.toString('utf8')).slice(-2000)));
  child.stdin.on('error', () => undefined);
  const d = Duplex.from({ readable: child.stdout, writable: child.stdin });
  d.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.once('error', (err) => d.destroy(err));
  child.once('exit', (code) => {
    if (code) d.destroy(new Error(`exit ${code}: ${stderr.trim().split('\n').pop()}`));
  });
  return d;
}

function openConnect(ep: Extract<Endpoint, { kind: 'connect' }>, timeoutMs: number): Promise<Duplex> {
  const socket: net.Socket = ep.tls
    ? tls.connect({ host: ep.tls.host, port: ep.tls.port, secureContext: contextFor(ep.tls.caPem), ALPNProtocols: ['http/1.1'], allowHalfOpen: true } as tls.ConnectionOptions)
    : net.connect({ path: ep.uds!, allowHalfOpen: true });
  socket.setNoDelay(true);
  const auth = ep.token ? `Proxy-Authorization: Bearer ${ep.token}\r\n` : '';
  const request = `CONNECT ${ep.target} HTTP/1.1\r\nHost: ${ep.target}\r\n${auth}\r\n`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`CONNECT ${ep.target} timed out`)), timeoutMs);
    let head: Buffer = Buffer.alloc(0);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('end', onEnd);
      clearTimeout(timer);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString('latin1'))?.[1];
      if (status !== '200') return fail(new Error(`CONNECT ${ep.target}: ${head.toString('utf8').slice(0, 300)}`));
      socket.pause();
      const rest = head.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    const onEnd = () => fail(new Error(`CONNECT ${ep.target}: connection closed before the answer`));
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('end', onEnd);
    if (ep.tls) socket.once('secureConnect', () => socket.write(request));
    else socket.write(request);
  });
}

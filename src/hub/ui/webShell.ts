/**
 * The web shell: a terminal in the browser to a node's sshd, through the node's agent.
 *
 *   browser (xterm.js) ──WebSocket /ui/shell── hub (SSH client, ssh2) ══ tunnel stream from the opener ══ agent ── sshd
 *
 * The stream is opened by the same opener as every other door (door "web-shell"): grants, quotas and
 * revocation apply, and the opener writes its stream audit row. The shell adds two rows of its own,
 * kind "shell": one when the session starts (user, target, agent, login, host key) and one when it
 * ends (bytes typed and shown, duration, why it ended).
 *
 * Who: the web UI session cookie. The browser must send the hub's own Origin (it always sends one on
 * a WebSocket), and the first message must carry the session's CSRF token.
 *
 * Messages:
 *   browser → hub  first, text: {"type":"start","csrf","target":"HOST:PORT","login","password"|"privateKey"(+"passphrase"),
 *                                "hostKey"?:"SHA256:…","cols","rows"}
 *                  then binary: keystrokes; text: {"type":"resize","cols","rows"}
 *   hub → browser  text: {"type":"ready","agent","hostKey"} · {"type":"error","code","message"} · {"type":"end","reason"}
 *                  binary: terminal output
 * The hub closes the WebSocket after "error" or "end".
 *
 * The password or key is used for this one SSH login and dropped: never stored, logged or audited.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import ssh2, { type ClientChannel } from 'ssh2';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { z } from 'zod';
import { WarrenError, asWarrenError } from '../../shared/errors.js';
import { logFailure, newRequestId, type FailureLog } from '../../shared/failureLog.js';
import { formatHostPort, formatSource, parseHostPort } from '../../shared/hostPort.js';
import type { Opener } from '../../doors/door.js';
import { duplexPair } from '../../tunnel/duplexPair.js';
import type { Audit } from '../audit.js';
import { parseInput } from '../httpJson.js';
import { checkOrigin, sameText, type ResolvedSession, type UiSessions } from './sessions.js';

export const SHELL_PATH = '/ui/shell';
/** The browser sends its start message as soon as the socket opens; a socket that does not is dropped. */
const START_TIMEOUT_MS = 30_000;
/** SSH handshake and login, once the stream to the node is open. */
const SSH_READY_TIMEOUT_MS = 20_000;
/** Keystrokes and resize messages are small; a paste is bounded by this. */
const MAX_MESSAGE_BYTES = 256 * 1024;
/** Output to the browser beyond this much unsent pauses the shell until the browser catches up. */
const MAX_BUFFERED_BYTES = 1 << 20;

const size = { cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) };

const startSchema = z
  .object({
    type: z.literal('start'),
    csrf: z.string().max(200),
    target: z.string().min(1).max(300),
    login: z.string().min(1, 'login is required').max(256).regex(/^[^\s:@/]+$/, 'login must be a user name without spaces, ":", "@" or "/"'),
    password: z.string().max(4096).optional(),
    privateKey: z.string().max(64 * 1024).optional(),
    passphrase: z.string().max(4096).optional(),
    hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'hostKey must be a fingerprint like SHA256:… (as `ssh-keygen -lf` prints it)').optional(),
    ...size,
  })
  .strict()
  .refine((m) => (m.password === undefined) !== (m.privateKey === undefined), { error: 'give exactly one of password or privateKey', path: ['password'] });

const resizeSchema = z.object({ type: z.literal('resize'), ...size }).strict();

export interface WebShellDeps {
  readonly sessions: UiSessions;
  readonly opener: Opener;
  readonly audit: Pick<Audit, 'record'>;
  readonly log: FailureLog;
}

/** OpenSSH's fingerprint of a host key blob: SHA256:BASE64 without padding. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export class WebShell {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });

  constructor(private readonly deps: WebShellDeps) {}

  /** Takes an upgrade request for /ui/shell: checks the session and the Origin, then speaks WebSocket. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    void this.deps.sessions.resolve(req).then(
      (session) => {
        if (!session) throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'no web UI session: sign in at /ui/signin');
        if (req.headers.origin === undefined) throw new WarrenError('WARREN_E_CSRF', 'a web shell WebSocket must come from the hub\'s own pages (no Origin header)');
        checkOrigin(req);
        this.wss.handleUpgrade(req, socket, head, (ws) => void this.run(ws, req, session));
      },
    ).catch((err: unknown) => refuseUpgrade(socket, logFailure(this.deps.log, err, { requestId: newRequestId(), path: SHELL_PATH })));
  }

  private async run(ws: WebSocket, req: IncomingMessage, session: ResolvedSession): Promise<void> {
    const source = formatSource(req.socket);
    const user = session.principal.user;
    const send = (msg: object) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(msg));
    const fail = (err: unknown) => {
      const e = logFailure(this.deps.log, err, { requestId: newRequestId(), door: 'web-shell', user, source });
      send({ type: 'error', code: e.code, message: e.message });
      ws.close(1000);
    };
    let start: z.output<typeof startSchema>;
    try {
      start = await firstMessage(ws, session);
    } catch (err) {
      return fail(err);
    }
    const hp = parseHostPort(start.target);
    if (!hp) return fail(new WarrenError('WARREN_E_BAD_TARGET', `target "${start.target.slice(0, 300)}" is not HOST:PORT (e.g. node1:22)`, { field: 'target' }));
    const target = formatHostPort(hp);
    const { login } = start;
    const started = Date.now();

    const abort = new AbortController();
    ws.once('close', () => abort.abort());
    let opened;
    try {
      // The opener writes the refusal's audit row (denied: no grant, quota; error: agent offline…).
      opened = await this.deps.opener.open({ target, principal: session.principal, door: 'web-shell', source, signal: abort.signal });
    } catch (err) {
      return fail(err);
    }
    if (ws.readyState !== ws.OPEN) return void opened.stream.destroy();
    const { agent } = opened;
    const [sshSide, relaySide] = duplexPair();
    const relayed = opened.relay(relaySide);

    const conn = new ssh2.Client();
    let hostKey = '';
    let bytesIn = 0;
    let bytesOut = 0;
    let ready = false;
    /** The shell reported its exit: the session is complete whatever happens to the stream afterwards. */
    let exited = false;
    let endReason: string | undefined;
    let failure: WarrenError | undefined;
    const audited = { kind: 'shell' as const, user, door: 'web-shell', agent, target, source };
    // A clean end closes the SSH connection in order (the stream then ends with a FIN both ways); a
    // failure cuts the stream.
    const finish = (why: string, err?: WarrenError) => {
      endReason ??= why;
      failure ??= err;
      conn.end();
      if (err) sshSide.destroy();
    };

    conn.on('error', (err: Error & { level?: string }) => {
      if (err.level === 'client-authentication') {
        return finish('login refused', new WarrenError('WARREN_E_SSH_AUTH', `the sshd at ${target} refused login "${login}" with the ${start.password !== undefined ? 'password' : 'private key'} given`, { target }));
      }
      if (err.message.includes('verification failed')) {
        return finish('host key mismatch', new WarrenError('WARREN_E_SSH_FAILED', `the host key of ${target} is ${hostKey}, not ${start.hostKey ?? ''} as given: not connecting`, { target, hostKey }));
      }
      const timedOut = err.level === 'client-timeout';
      finish('ssh failed', new WarrenError('WARREN_E_SSH_FAILED', timedOut ? `no SSH login at ${target} within ${SSH_READY_TIMEOUT_MS / 1000} s: is an sshd listening there?` : `SSH to ${target} failed: ${err.message}`, { target }));
    });
    conn.once('close', () => {
      finish(ready ? 'closed' : 'ssh failed', ready ? undefined : new WarrenError('WARREN_E_SSH_FAILED', `the connection to ${target} closed before an SSH login (is it an SSH server?)`, { target }));
      void relayed.then(async (r) => {
        if (r.reason === 'revoked') endReason = 'access revoked';
        else if (ready && !exited && endReason === 'closed') {
          // Gone before the shell said it exited (an agent or sshd gone, the stream cut): the browser must
          // see an error, not "Session ended", or output cut short would look complete (ssh says
          // "closed by remote host" and exits 255 for the same).
          failure = r.reason === 'closed'
            ? new WarrenError('WARREN_E_SSH_FAILED', `the connection to ${target} closed before the shell exited`, { target })
            : new WarrenError('WARREN_E_TUNNEL_LOST', `the stream to ${target} through agent ${agent} was cut (${r.reason}) before the shell exited`, { target, agent });
        }
        if (failure) {
          send({ type: 'error', code: failure.code, message: failure.message });
        } else {
          send({ type: 'end', reason: endReason });
        }
        ws.close(1000);
        await this.deps.audit.record({
          ...audited, result: failure ? (failure.code === 'WARREN_E_SSH_AUTH' ? 'denied' : 'error') : 'ok',
          reason: failure ? `${ready ? 'ended' : 'not started'}: ${failure.code}: ${failure.message}` : `ended: ${endReason ?? 'closed'} (login ${login})`,
          bytesIn, bytesOut, durationMs: Date.now() - started,
        });
      });
    });
    ws.on('close', () => finish(ready ? 'browser closed the session' : 'browser left before the login'));

    conn.on('ready', () => {
      conn.shell({ term: 'xterm-256color', cols: start.cols, rows: start.rows }, (err, channel) => {
        if (err) return finish('no shell', new WarrenError('WARREN_E_SSH_FAILED', `the sshd at ${target} opened no shell: ${err.message}`, { target }));
        ready = true;
        void this.deps.audit.record({ ...audited, result: 'ok', reason: `started: login ${login}, host key ${hostKey}` });
        send({ type: 'ready', agent, target, hostKey });
        this.pipe(ws, channel, (n) => (bytesIn += n), (n) => (bytesOut += n));
        channel.on('exit', (code: number | null, signal?: string) => {
          exited = true;
          endReason = code === null ? `shell killed by ${signal ?? 'a signal'}` : `shell exited with status ${code}`;
        });
        channel.on('close', () => finish(endReason ?? 'closed'));
      });
    });
    try {
      conn.connect({
        sock: sshSide,
        username: login,
        ...(start.password !== undefined ? { password: start.password } : { privateKey: start.privateKey, ...(start.passphrase ? { passphrase: start.passphrase } : {}) }),
        tryKeyboard: false,
        readyTimeout: SSH_READY_TIMEOUT_MS,
        keepaliveInterval: 30_000,
        hostVerifier: (key: Buffer) => {
          hostKey = hostKeyFingerprint(key);
          return start.hostKey === undefined || start.hostKey === hostKey;
        },
      });
    } catch (err) {
      // A private key ssh2 cannot parse (or an encrypted one without its passphrase) throws here.
      const why = err instanceof Error ? err.message.replace(/^Cannot parse privateKey: /, '') : 'unreadable';
      finish('bad key', new WarrenError('WARREN_E_BAD_REQUEST', `privateKey: ${why} (paste an OpenSSH or PEM private key, and its passphrase if it has one)`, { field: 'privateKey' }));
      conn.emit('close');
    }
  }

  /** Keystrokes to the shell and its output to the browser, each direction with backpressure. */
  private pipe(ws: WebSocket, channel: ClientChannel, countIn: (n: number) => void, countOut: (n: number) => void): void {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!isBinary) {
        const resize = resizeSchema.safeParse(safeJson(buf));
        if (resize.success) channel.setWindow(resize.data.rows, resize.data.cols, 0, 0);
        return;
      }
      countIn(buf.length);
      if (!channel.write(buf)) {
        ws.pause();
        channel.once('drain', () => ws.resume());
      }
    });
    const forward = (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      countOut(chunk.length);
      ws.send(chunk, { binary: true }, () => {
        if (channel.isPaused() && ws.bufferedAmount < MAX_BUFFERED_BYTES) channel.resume();
      });
      if (ws.bufferedAmount >= MAX_BUFFERED_BYTES) channel.pause();
    };
    channel.on('data', forward);
    channel.stderr.on('data', forward);
  }
}

function safeJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The start message, validated, its CSRF token checked; rejects on anything else or after the timeout. */
function firstMessage(ws: WebSocket, session: ResolvedSession): Promise<z.output<typeof startSchema>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new WarrenError('WARREN_E_TIMEOUT', `no start message within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    ws.once('close', () => (clearTimeout(timer), reject(new WarrenError('WARREN_E_BAD_REQUEST', 'the browser closed the web shell before starting it'))));
    ws.once('message', (data: RawData, isBinary: boolean) => {
      clearTimeout(timer);
      try {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        const value = isBinary ? undefined : safeJson(buf);
        if (typeof value !== 'object' || value === null) throw new WarrenError('WARREN_E_BAD_REQUEST', 'the first web shell message must be a JSON start message');
        const csrf = (value as { csrf?: unknown }).csrf;
        if (typeof csrf !== 'string' || !sameText(csrf, session.csrf)) {
          throw new WarrenError('WARREN_E_CSRF', 'the web shell start message lacks the session\'s CSRF token; reload the page');
        }
        resolve(parseInput(startSchema, value, 'body'));
      } catch (err) {
        reject(asWarrenError(err));
      }
    });
  });
}

/** Answers an upgrade we will not take with a plain HTTP error (the JSON body every door uses). */
function refuseUpgrade(socket: Duplex, err: WarrenError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(err.toJSON());
  socket.end(`HTTP/1.1 ${err.status} ${err.status === 401 ? 'Unauthorized' : err.status === 403 ? 'Forbidden' : 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * The stand-in's kubelet side of `kubectl exec` and `kubectl port-forward` (./apiserver.ts does the
 * HTTP upgrade and the protocol negotiation):
 *
 *   exec          over WebSocket (`v5.channel.k8s.io`: one byte of channel, then data; channel 255
 *                 [0] closes stdin) — kubectl 1.32's default — or over SPDY streams (`streamtype`
 *                 error/stdin/stdout/stderr), kubectl's fallback. The container runs `cat` (echoes
 *                 stdin), `true` or `false`; anything else exits 127. The exit status goes on the
 *                 error channel as the kubelet writes it (kubectl prints "command terminated with
 *                 exit code N").
 *   port-forward  SPDY streams (upgraded connection, or tunnelled over WebSocket as
 *                 `SPDY/3.1+portforward.k8s.io`): per connection an `error` and a `data` stream with
 *                 the same requestID. Every pod port echoes what it receives, and ends when the
 *                 client's side ends (half-close).
 */
import type { WebSocket } from 'ws';
import type { JsonObject } from './objects.js';
import type { SpdySession, SpdyStream } from './spdy.js';

interface ExecIO {
  stdout(b: Buffer): void;
  stderr(b: Buffer): void;
  /** Registers stdin handlers; `end` runs when the client closes stdin. */
  stdin(data: (b: Buffer) => void, end: () => void): void;
  /** Sends the final Status on the error channel and closes. */
  finish(status: JsonObject): void;
}

function exitStatus(command: string[], code: number): JsonObject {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** The container: three commands, enough to prove the byte paths and the exit status. */
function runCommand(command: string[], hasStdin: boolean, io: ExecIO): void {
  const finish = (code: number) => io.finish(exitStatus(command, code));
  switch (command[0]) {
    case 'cat':
      if (!hasStdin) return finish(0);
      return io.stdin((b) => io.stdout(b), () => finish(0));
    case 'true':
      return finish(0);
    case 'false':
      return finish(1);
    default:
      io.stderr(Buffer.from(`sh: ${command[0] ?? ''}: not found\n`));
      return finish(127);
  }
}

export function execOverWebSocket(ws: WebSocket, query: URLSearchParams): void {
  let onStdin: (b: Buffer) => void = () => undefined;
  let stdinEnd: (() => void) | undefined;
  const endStdin = () => {
    const end = stdinEnd;
    stdinEnd = undefined;
    end?.();
  };
  const send = (channel: number, b: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), b]), { binary: true });
  };
  ws.on('message', (data: Buffer) => {
    if (data[0] === 0) onStdin(data.subarray(1));
    else if (data[0] === 255 && data[1] === 0) endStdin();
  });
  ws.on('close', endStdin);
  runCommand(query.getAll('command'), query.get('stdin') === 'true', {
    stdout: (b) => send(1, b),
    stderr: (b) => send(2, b),
    stdin: (data, end) => {
      onStdin = data;
      stdinEnd = end;
    },
    finish: (status) => {
      send(3, Buffer.from(JSON.stringify(status)));
      ws.close(1000);
    },
  });
}

/** SPDY exec: the client opens its streams one by one; the command runs once all it asked for are open. */
const spdyExecs = new WeakMap<SpdySession, Map<string, SpdyStream>>();

export function execSpdyStream(session: SpdySession, stream: SpdyStream, query: URLSearchParams): void {
  const streams = spdyExecs.get(session) ?? new Map<string, SpdyStream>();
  spdyExecs.set(session, streams);
  streams.set(stream.headers.streamtype ?? '', stream);
  const wanted = ['error', ...['stdin', 'stdout', 'stderr'].filter((t) => query.get(t) === 'true')];
  if (streams.size !== wanted.length || !wanted.every((t) => streams.has(t))) return;
  runCommand(query.getAll('command'), streams.has('stdin'), {
    stdout: (b) => streams.get('stdout')?.write(b),
    stderr: (b) => streams.get('stderr')?.write(b),
    stdin: (data, end) => {
      const stdin = streams.get('stdin')!;
      stdin.onData = data;
      stdin.onEnd = end;
      stdin.onReset = end;
    },
    finish: (status) => {
      streams.get('stdout')?.end();
      streams.get('stderr')?.end();
      const error = streams.get('error')!;
      if (status.status !== 'Success') error.write(Buffer.from(JSON.stringify(status)));
      error.end();
      session.goAway();
    },
  });
}

const forwardErrorStreams = new WeakMap<SpdySession, Map<string, SpdyStream>>();

export function portForwardStream(session: SpdySession, stream: SpdyStream): void {
  const errors = forwardErrorStreams.get(session) ?? new Map<string, SpdyStream>();
  forwardErrorStreams.set(session, errors);
  const requestId = stream.headers.requestid ?? '';
  if (stream.headers.streamtype === 'error') return void errors.set(requestId, stream);
  if (stream.headers.streamtype !== 'data') return stream.reset();
  // The pod's port: an echo that ends its side when the client ends its own.
  stream.onData = (b) => stream.write(b);
  stream.onEnd = () => {
    stream.end();
    errors.get(requestId)?.end();
    errors.delete(requestId);
  };
}

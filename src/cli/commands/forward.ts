/**
 * `warren forward LOCAL_ADDR:HOST:PORT …`: local listeners, like `ssh -L`; each accepted connection
 * becomes one CONNECT through the hub with the caller's token (grants, routing and audit are the
 * hub's, per connection). Half-close is carried both ways. A connection the hub refuses is reset
 * (there is no protocol to say why), and the reason goes to stderr.
 */
import net from 'node:net';
import type { Command } from 'commander';
import { asWarrenError } from '../../shared/errors.js';
import { formatSource } from '../../shared/hostPort.js';
import type { HubEndpoint } from '../../tunnel/dialHub.js';
import { HubClientOpener } from '../../client/hubOpener.js';
import type { Principal } from '../../doors/door.js';
import { abortStream } from '../../tunnel/relay.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { parseForwardSpec, type ForwardSpec } from '../localForwardSpec.js';
import { listenLocal, trackSockets, untilStopped, warnIfExposed } from '../localListener.js';

const NAME = 'warren forward';

export function registerForward(program: Command): void {
  program
    .command('forward <spec...>')
    .description('Listen locally and carry each connection to HOST:PORT through the hub (like ssh -L).')
    .addHelpText('after', `
Spec: [LOCAL_ADDR:]LOCAL_PORT:HOST:PORT; a bare port listens on 127.0.0.1, port 0 picks a free one.

Examples:
  warren forward 127.0.0.1:5432:db.alpha.warren:5432
  warren forward 8080:10.20.0.5:80 2222:node1:22
  psql -h 127.0.0.1 -p 5432 …`)
    .action(async (specs: string[], _o, cmd: Command) => {
      const parsed = specs.map(parseForwardSpec);
      const { endpoint, token } = await resolveClient(cmd.optsWithGlobals<ClientFlags>());
      process.exitCode = await runForward(endpoint, token!, parsed);
    });
}

export async function runForward(endpoint: HubEndpoint, token: string, specs: readonly ForwardSpec[]): Promise<number> {
  const opener = new HubClientOpener(endpoint, token);
  const stops: Array<() => void> = [];
  try {
    for (const spec of specs) {
      let bound = '';
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => void carry(socket, spec, bound, opener));
      stops.push(trackSockets(server));
      bound = await listenLocal(server, spec.listen, NAME);
      warnIfExposed(spec.listen, NAME);
      process.stdout.write(`${NAME}: listening on ${bound} → ${spec.target}\n`);
    }
  } catch (err) {
    for (const stop of stops) stop();
    throw err;
  }
  await untilStopped();
  for (const stop of stops) stop();
  return 0;
}

const LOCAL: Principal = { user: 'local', groups: [], via: 'token' };

async function carry(socket: net.Socket, spec: ForwardSpec, bound: string, opener: HubClientOpener): Promise<void> {
  socket.on('error', () => undefined);
  const abort = new AbortController();
  const onClose = () => abort.abort();
  socket.once('close', onClose);
  const source = formatSource(socket);
  let opened;
  try {
    opened = await opener.open({ target: spec.target, principal: LOCAL, door: 'forward', source, signal: abort.signal });
  } catch (err) {
    const e = asWarrenError(err);
    if (!socket.destroyed) process.stderr.write(`${NAME}: ${bound} → ${spec.target}: ${e.message} [${e.code}]\n`);
    abortStream(socket);
    return;
  } finally {
    socket.off('close', onClose);
  }
  if (socket.destroyed) {
    opened.stream.destroy();
    return;
  }
  const result = await opened.relay(socket);
  if (result.reason !== 'closed') process.stderr.write(`${NAME}: ${bound} → ${spec.target}: stream ${result.reason}\n`);
}

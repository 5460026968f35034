/**
 * `warren connect HOST:PORT`: one stream through the hub on stdin/stdout, for ssh's ProxyCommand.
 * stdin's end half-closes the stream (the target still answers); the command exits when the remote
 * side closes: 0 after a clean end, 1 when the stream breaks or is refused (reason on stderr).
 */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { parseHostPort, formatHostPort, type HostPort } from '../../shared/hostPort.js';
import type { HubEndpoint } from '../../tunnel/dialHub.js';
import { openThroughHub } from '../../client/connectThroughHub.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';

/** After SIGHUP (ssh exiting), how long the stream may take to close cleanly before it is dropped. */
const HANG_UP_GRACE_MS = 2_000;

/** The target argument, or a usage error; checked before the hub is contacted (a typo is exit 2, whatever the config). */
export function connectTarget(targetText: string): HostPort {
  const target = parseHostPort(targetText);
  if (!target) throw new WarrenError('WARREN_E_USAGE', `"${targetText}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:22)`);
  return target;
}

export function registerConnect(program: Command): void {
  program
    .command('connect <target>')
    .description('Carry stdin/stdout to HOST:PORT through the hub (for ssh ProxyCommand).')
    .addHelpText('after', `
Targets: NODE:22 (an agent's own host), db.prod.alpha.warren:5432 (a host behind agent alpha),
10.20.0.5:8080 (a host in a route an agent advertises).

Examples:
  ssh -o ProxyCommand='warren connect %h:%p' root@node1
  ansible_ssh_common_args='-o ProxyCommand="warren connect %h:%p"'`)
    .action(async (target: string, _o, cmd: Command) => {
      connectTarget(target);
      const { endpoint, token } = await resolveClient(cmd.optsWithGlobals<ClientFlags>());
      process.exitCode = await runConnect(endpoint, token!, target);
    });
}

export async function runConnect(ep: HubEndpoint, token: string, targetText: string): Promise<number> {
  const target = connectTarget(targetText);
  const { socket, head } = await openThroughHub(ep, token, formatHostPort(target));
  if (head.length) process.stdout.write(head);
  return new Promise<number>((resolve) => {
    let failed: Error | undefined;
    socket.on('error', (err) => (failed ??= err));
    process.stdin.on('error', () => undefined);
    process.stdin.pipe(socket);
    socket.pipe(process.stdout, { end: false });
    // ssh closes its ProxyCommand's pipes and then sends it SIGHUP. Dying there resets the connection
    // before the hub's last bytes arrive, and the hub audits a clean session as aborted (ECONNRESET).
    // Instead let the close already under way finish (stdin still delivers what ssh wrote before its
    // EOF), bounded, discarding what no one will read any more.
    let hungUp = false;
    const onHangUp = () => {
      if (hungUp) return;
      hungUp = true;
      socket.unpipe(process.stdout);
      socket.resume();
      setTimeout(() => socket.destroy(), HANG_UP_GRACE_MS).unref();
    };
    process.once('SIGHUP', onHangUp);
    process.stdout.on('error', onHangUp);
    // The remote side closing ends the session (ssh semantics), even if stdin is still open.
    socket.once('end', () => socket.end());
    socket.once('close', () => {
      process.off('SIGHUP', onHangUp);
      process.stdin.unpipe(socket);
      process.stdin.pause();
      const clean = !failed && socket.readableEnded;
      if (!clean && !hungUp) process.stderr.write(`warren connect: connection to ${formatHostPort(target)} lost: ${failed?.message ?? 'closed before the end of the stream'}\n`);
      process.stdout.write('', () => resolve(clean ? 0 : 1));
    });
  });
}

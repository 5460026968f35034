/**
 * `warren socks`: a local SOCKS5 proxy, like `ssh -D` or `tsh ssh -D`. It runs the hub's own SOCKS5
 * door on a local listener, with one difference: no authentication, because every connection is
 * carried through the hub's CONNECT door with the token of whoever started it (browsers cannot send
 * SOCKS5 credentials at all). The hub still decides each stream by that token's grants and audits it.
 * A refusal from the hub comes back as the SOCKS5 reply its error code maps to (docs/errors.md).
 */
import net from 'node:net';
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { parseListen, type HostPort } from '../../shared/hostPort.js';
import type { HubEndpoint } from '../../tunnel/dialHub.js';
import { HubClientOpener } from '../../client/hubOpener.js';
import type { Principal } from '../../doors/door.js';
import { handleSocks5, type DoorLog } from '../../doors/socks5.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { listenLocal, trackSockets, untilStopped, warnIfExposed } from '../localListener.js';

const NAME = 'warren socks';

export function registerSocks(program: Command): void {
  program
    .command('socks')
    .description('Run a local SOCKS5 proxy that carries each connection through the hub with your token (like ssh -D).')
    .option('--listen <addr>', 'HOST:PORT to listen on (port 0: a free port; the bound address is printed)', '127.0.0.1:1080')
    .addHelpText('after', `
Targets are resolved by the hub: node1:22, web.alpha.warren:8080, or an address or name in a
route an agent advertises. Use socks5h:// (or --socks5-hostname) so names reach the hub unresolved.

Examples:
  warren socks --listen 127.0.0.1:1080
  curl --socks5-hostname 127.0.0.1:1080 http://10.20.0.5:8080/
  HTTPS_PROXY=socks5h://127.0.0.1:1080 kubectl get nodes
  chromium --proxy-server=socks5://127.0.0.1:1080`)
    .action(async (o: { listen: string }, cmd: Command) => {
      const listen = parseListen(o.listen, '127.0.0.1');
      if (!listen) throw new WarrenError('WARREN_E_USAGE', `--listen "${o.listen}" is not HOST:PORT (e.g. 127.0.0.1:1080)`);
      const { endpoint, token } = await resolveClient(cmd.optsWithGlobals<ClientFlags>());
      process.exitCode = await runSocks(endpoint, token!, listen);
    });
}

export async function runSocks(endpoint: HubEndpoint, token: string, listen: HostPort): Promise<number> {
  const opener = new HubClientOpener(endpoint, token);
  // Who the local door thinks the caller is; the hub sees the token's user, which is what counts.
  const local: Principal = { user: 'local', groups: [], via: 'token' };
  const log = stderrLog(NAME);
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    void handleSocks5(socket, { opener, authenticator: { fromToken: async () => local }, noAuthPrincipal: local, log });
  });
  const stop = trackSockets(server);
  const bound = await listenLocal(server, listen, NAME);
  warnIfExposed(listen, NAME);
  process.stdout.write(`${NAME}: SOCKS5 listening on ${bound} (through ${endpoint.url.origin})\n`);
  await untilStopped();
  stop();
  return 0;
}

/** The door's log as short stderr lines; refusals and failures only (debug is per-stream noise). */
export function stderrLog(prefix: string): DoorLog {
  const line = (obj: object, msg?: string) => {
    const o = obj as { target?: string; code?: string; reason?: string };
    const what = o.target ? `${o.target}: ` : '';
    process.stderr.write(`${prefix}: ${what}${o.reason ?? msg ?? ''}${o.code ? ` [${o.code}]` : ''}\n`);
  };
  return { debug() {}, info: line, warn: line, error: line };
}

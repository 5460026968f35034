/**
 * The `warren` command. Exit codes: 0 success, 1 the operation failed (stderr says why and what to
 * do), 2 usage error (one line on stderr).
 */
import { Command, CommanderError, Option } from 'commander';
import { asWarrenError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { registerHub } from './commands/hub.js';
import { registerAgent } from './commands/agent.js';
import { registerAgentInstall } from './commands/agentInstall.js';
import { registerAgentManifest } from './commands/agentManifest.js';
import { registerKubeconfig } from './commands/kubeconfig.js';
import { registerSocks } from './commands/socks.js';
import { registerForward } from './commands/forward.js';
import { registerRoute } from './commands/route.js';
import { registerAdmin } from './commands/admin.js';
import { registerSelf } from './commands/self.js';
import { registerForwards } from './commands/forwards.js';
import { registerEgress } from './commands/egress.js';
import { connectTarget, runConnect } from './commands/connect.js';
import { resolveClient, type ClientFlags } from './clientConfig.js';

function buildProgram(): Command {
  const program = new Command('warren')
    .description('Reach Kubernetes clusters, nodes and servers behind NAT through agents that dial out to a hub.')
    .version(VERSION, '-v, --version')
    // Options after a subcommand belong to it: `warren agent install --token T` must reach `install`,
    // not the `agent` command's own --token (commander needs this on every level above).
    .enablePositionalOptions()
    .exitOverride();

  registerHub(program);
  const agentCommand = registerAgent(program);
  registerAgentInstall(agentCommand);
  registerAgentManifest(agentCommand);
  registerKubeconfig(program);
  registerAdmin(program);
  registerSelf(program);
  registerForwards(program);
  registerEgress(program);
  registerSocks(program);
  registerForward(program);
  registerRoute(program);
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

  return program;
}

/** Commands that run a process or log in take their own flags; every other leaf talks to the hub. */
const SELF_CONFIGURED = new Set(['hub', 'agent', 'login']);

function addClientOptions(cmd: Command): void {
  if (SELF_CONFIGURED.has(cmd.name())) return;
  if (cmd.commands.length > 0) return cmd.commands.forEach(addClientOptions);
  cmd
    .option('--hub <url>', 'hub URL (env WARREN_HUB; saved by `warren login`)')
    .option('--token <token>', 'access token (env WARREN_TOKEN; saved by `warren login`)')
    .option('--ca-fingerprint <pin>', 'sha256:… pin of the hub CA (env WARREN_CA_FINGERPRINT)')
    .option('--ca-file <file>', 'PEM file of the hub CA, instead of a pin')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']));
}

function exitOverrideAll(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({ outputError: (text, write) => write(`${text.split('\n')[0]} (see --help)\n`) });
  for (const sub of cmd.commands) exitOverrideAll(sub);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.commands.forEach(addClientOptions);
  exitOverrideAll(program);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; every other commander error is a usage error
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    const e = asWarrenError(err);
    if (e.code === 'WARREN_E_USAGE') {
      process.stderr.write(`error: ${e.message}\n`);
      return 2;
    }
    const detail = e.code === 'WARREN_E_INTERNAL' && err instanceof Error ? ` (${err.message})` : '';
    process.stderr.write(`warren: ${e.message}${detail} [${e.code}]\n`);
    return 1;
  }
}

const code = await main(process.argv);
// Flush stdout/stderr, then exit even if a handle (a follower, a socket) is still open.
process.stdout.write('', () => process.exit(code));



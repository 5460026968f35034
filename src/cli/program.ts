/**
 * The `warren` command tree. Register a new command here with one line; the conventions in
 * conventions.ts (noun aliases, `-o` on listings, one-line usage errors) then apply to it too.
 */
import { Command } from 'commander';
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
import { registerApply } from './commands/apply.js';
import { registerConnect } from './commands/connect.js';
import { registerVersion } from './commands/version.js';
import { registerCompletion } from './commands/completion.js';
import { registerConfig } from './commands/config.js';
import { applyConventions } from './conventions.js';

/** Commands that run a process or log in take their own flags; every other leaf talks to the hub. */
const SELF_CONFIGURED = new Set(['hub', 'agent', 'login', 'completion', 'config']);

function addClientOptions(cmd: Command): void {
  if (SELF_CONFIGURED.has(cmd.name())) return;
  if (cmd.commands.length > 0) return cmd.commands.forEach(addClientOptions);
  cmd
    .option('--hub <url>', 'hub URL (env WARREN_HUB; saved by `warren login`)')
    .option('--token <token>', 'access token (env WARREN_TOKEN; saved by `warren login`)')
    .option('--ca-fingerprint <pin>', 'sha256:… pin of the hub CA (env WARREN_CA_FINGERPRINT)')
    .option('--ca-file <file>', 'PEM file of the hub CA, instead of a pin')
    .option('--context <name>', 'saved login to use instead of the current one (`warren config get-contexts`)');
}

export function buildProgram(): Command {
  const program = new Command('warren')
    .description('Reach Kubernetes clusters, nodes and servers behind NAT through agents that dial out to a hub.')
    .version(VERSION, '-v, --version')
    // Options after a subcommand belong to it: `warren agent install --token T` must reach `install`,
    // not the `agent` command's own --token (commander needs this on every level above).
    .enablePositionalOptions();

  registerHub(program);
  const agentCommand = registerAgent(program);
  registerAgentInstall(agentCommand);
  registerAgentManifest(agentCommand);
  registerKubeconfig(program);
  registerAdmin(program);
  registerSelf(program);
  registerForwards(program);
  registerEgress(program);
  registerApply(program);
  registerSocks(program);
  registerForward(program);
  registerRoute(program);
  registerConnect(program);
  registerVersion(program);
  registerCompletion(program);
  registerConfig(program);

  program.commands.forEach(addClientOptions);
  applyConventions(program);
  return program;
}

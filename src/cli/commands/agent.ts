/** `warren agent`: join once with a token, then keep one tunnel to the hub open. */
import type { Command } from 'commander';
import { agentConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/agent.js';
import { createLogger } from '../../log.js';

export function registerAgent(program: Command): Command {
  return program
    .command('agent')
    .description('Run an agent: dials out to the hub and carries streams to targets it is allowed to reach.')
    .option('--token <token>', 'join token (first start only; later starts use the identity in --data-dir)')
    .option('--token-file <file>', 'read the join token from a file (e.g. a mounted Kubernetes Secret)')
    .option('--hub <url>', 'override the hub URL stored in the token or identity')
    .option('--name <name>', 'agent name, an RFC 1123 label (default: the first label of the hostname)')
    .option('--data-dir <dir>', 'where the key, certificate and hub CA are kept', './warren-agent')
    .option('--labels <k=v,...>', 'labels shown in `warren agents ls`')
    .option('--allow <patterns>', 'what this agent will dial: localhost, globs, CIDRs, HOST:PORTS, * (default: own host + routes)')
    .option('--route <routes>', 'CIDRs and DNS suffixes this agent serves, e.g. 10.20.0.0/16,.corp.internal')
    .option('--cluster <name>', 'Kubernetes cluster name(s) this agent serves')
    .option('--ping-interval <d>', 'keepalive interval; a silent hub is dropped after two', '10s')
    .option('--dial-timeout <d>', 'how long to try to reach a target', '10s')
    .option('--reconnect-max <d>', 'cap of the reconnect backoff', '30s')
    .option('--log-level <level>', 'trace|debug|info|warn|error (env WARREN_LOG_LEVEL)')
    .addHelpText(
      'after',
      `
Environment: HTTPS_PROXY / NO_PROXY are honoured for the connection to the hub.

Examples:
  warren agent --token wj1.…                       # first start: joins and stores its identity in ./warren-agent
  warren agent                                     # later starts: no token needed
  warren agent --token-file /run/secrets/join --name node7 --route 10.20.0.0/16 --allow '10.20.0.0/16,localhost'`,
    )
    .action(async (o: Record<string, string | undefined>) => {
      const config = agentConfig({
        token: o.token, tokenFile: o.tokenFile, hub: o.hub, name: o.name, dataDir: o.dataDir, labels: o.labels, allow: o.allow,
        route: o.route, cluster: o.cluster, pingInterval: o.pingInterval, dialTimeout: o.dialTimeout, reconnectMax: o.reconnectMax,
        logLevel: o.logLevel,
      });
      const agent = await startAgent(config, createLogger('agent', config.logLevel));
      const stop = () => void agent.stop();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await agent.done;
    });
}

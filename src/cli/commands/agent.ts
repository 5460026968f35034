/** `warren agent`: join once with a token, then keep one tunnel to the hub open. */
import type { Command } from 'commander';
import { agentConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/agent.js';
import { createLogger } from '../../log.js';
import { sendAgentReadyWhenUp } from '../readySignal.js';
import { startHealthServer } from '../../agent/health.js';
import { formatHostPort } from '../../hostPort.js';

export function registerAgent(program: Command): Command {
  return program
    .command('agent')
    .description('Run an agent: dials out to the hub and carries streams to targets it is allowed to reach.')
    .option('--token-file <file>', 'read the join token from a file, e.g. a mounted Kubernetes Secret (first start only; later starts use the identity in --data-dir); or set WARREN_JOIN_TOKEN')
    .option('--token <token>', 'join token on the command line: visible to every user in `ps`; prefer --token-file or WARREN_JOIN_TOKEN')
    .option('--hub <url>', 'override the hub URL stored in the token or identity')
    .option('--name <name>', 'agent name, an RFC 1123 label (default: the first label of the hostname)')
    .option('--data-dir <dir>', 'where the key, certificate and hub CA are kept', './warren-agent')
    .option('--labels <k=v,...>', 'labels shown in `warren agents ls`')
    .option('--allow <patterns>', 'what this agent will dial: localhost, globs, CIDRs, HOST:PORTS, * (default: own host + routes)')
    .option('--route <routes>', 'CIDRs and DNS suffixes this agent serves, e.g. 10.20.0.0/16,.corp.internal')
    .option('--cluster <name>', 'Kubernetes cluster name this agent serves (with --kube; default: the agent name)')
    .option('--kube <source>', 'serve this cluster\'s API: "in-cluster" (the pod\'s service account) or a kubeconfig path')
    .option('--kube-context <name>', 'context of the --kube kubeconfig to use (default: its current-context)')
    .option('--health-listen <addr>', 'serve /healthz and /readyz (tunnel up) on HOST:PORT, or "off" (default: 0.0.0.0:8081 with --kube in-cluster, else off)')
    .option('--ping-interval <d>', 'keepalive interval; a silent hub is dropped after two', '10s')
    .option('--dial-timeout <d>', 'how long to try to reach a target', '10s')
    .option('--reconnect-max <d>', 'cap of the reconnect backoff', '30s')
    .option('--log-level <level>', 'trace|debug|info|warn|error (env WARREN_LOG_LEVEL)')
    .addHelpText(
      'after',
      `
Environment: WARREN_JOIN_TOKEN is the join token (instead of --token-file); HTTPS_PROXY / NO_PROXY are
honoured for the connection to the hub.

A --route or --cluster must be allowed by the join token (warren join-token create --routes / --clusters),
or the hub refuses the agent and it exits 1.

Examples:
  WARREN_JOIN_TOKEN=wj1.… warren agent             # first start: joins and stores its identity in ./warren-agent
  warren agent                                     # later starts: no token needed
  warren agent --token-file /run/secrets/join --name node7 --route 10.20.0.0/16 --allow '10.20.0.0/16,localhost'
  warren agent --token-file join --name alpha-1 --cluster alpha --kube ~/.kube/alpha.yaml   # kubectl via https://HUB/k8s/clusters/alpha
  warren agent manifest --cluster alpha | kubectl apply -f -                              # the same, as a Deployment in the cluster`,
    )
    .action(async (o: Record<string, string | undefined>) => {
      const config = agentConfig({
        token: o.token, tokenFile: o.tokenFile, hub: o.hub, name: o.name, dataDir: o.dataDir, labels: o.labels, allow: o.allow,
        route: o.route, cluster: o.cluster, kube: o.kube, kubeContext: o.kubeContext, healthListen: o.healthListen, pingInterval: o.pingInterval, dialTimeout: o.dialTimeout, reconnectMax: o.reconnectMax,
        logLevel: o.logLevel,
      });
      const log = createLogger('agent', config.logLevel);
      if (o.token !== undefined) {
        process.stderr.write('warning: --token puts the join token in the process list (ps) for as long as the agent runs; use --token-file FILE or the WARREN_JOIN_TOKEN environment variable\n');
      }
      // Up before joining, so a liveness probe passes while the agent enrolls; ready once the tunnel is.
      let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
      const health = config.healthListen ? await startHealthServer(config.healthListen, () => agent?.connected ?? false) : undefined;
      if (health) log.info({ healthListen: formatHostPort({ host: health.address.address, port: health.address.port }) }, 'health endpoints listening');
      agent = await startAgent(config, log);
      const stop = () => void agent?.stop();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      sendAgentReadyWhenUp(agent, config);
      await agent.done.finally(() => health?.close());
    });
}

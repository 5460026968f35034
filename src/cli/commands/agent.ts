/** `warren agent`: join once with a token, then keep one tunnel to the hub open. */
import type { Command } from 'commander';
import type { AgentFlags } from '../../agent/config.js';
import type { Agent } from '../../agent/agent.js';
import { sendAgentReadyWhenUp } from '../readySignal.js';
import { formatHostPort } from '../../shared/hostPort.js';
import { deferOptions } from '../conventions.js';

export function registerAgent(program: Command): Command {
  const command = program.command('agent').description('Run an agent: dials out to the hub and carries streams to targets it is allowed to reach.');
  return deferOptions(command, async () => (await import('../../agent/config.js')).agentOptions)
    .addHelpText(
      'after',
      `
A --route or --cluster must be allowed by the join token (warren join-token create --routes / --clusters),
or the hub refuses the agent and it exits 1.

Examples:
  WARREN_JOIN_TOKEN=wj1.… warren agent             # first start: joins and stores its identity in ./warren-agent
  warren agent                                     # later starts: no token needed
  warren agent --token-file /run/secrets/join --name node7 --route 10.20.0.0/16 --allow '10.20.0.0/16,localhost'
  warren agent --token-file join --name alpha-1 --cluster alpha --kube ~/.kube/alpha.yaml   # kubectl via https://HUB/k8s/clusters/alpha
  warren agent manifest --cluster alpha | kubectl apply -f -                              # the same, as a StatefulSet in the cluster`,
    )
    .action(async (flags: AgentFlags) => {
      // The agent's modules load when it runs, not at every `warren` command's start.
      const [{ agentConfig }, { startAgent }, { createLogger }, { startHealthServer }] = await Promise.all([
        import('../../agent/config.js'), import('../../agent/agent.js'), import('../../shared/log.js'), import('../../agent/health.js'),
      ]);
      const config = agentConfig(flags);
      const log = await createLogger('agent', config.logLevel, config.logFormat);
      if (flags.token !== undefined) {
        process.stderr.write('warning: --token puts the join token in the process list (ps) for as long as the agent runs; use --token-file FILE or the WARREN_JOIN_TOKEN environment variable\n');
      }
      // Up before joining, so a liveness probe passes while the agent enrolls; ready once the tunnel is.
      // eslint-disable-next-line prefer-const -- the health check below reads it before startAgent() resolves
      let agent: Agent | undefined;
      const health = config.healthListen ? await startHealthServer(config.healthListen, () => agent?.connected ?? false) : undefined;
      if (health) log.info({ healthListen: formatHostPort({ host: health.address.address, port: health.address.port }) }, 'health endpoints listening');
      agent = await startAgent(config, log);
      // SIGTERM (a rollout, systemctl stop) drains; Ctrl-C stops at once.
      process.once('SIGTERM', () => void agent.stop({ drainMs: config.drainTimeoutMs }));
      process.once('SIGINT', () => void agent.stop());
      sendAgentReadyWhenUp(agent, config);
      await agent.done.finally(() => health?.close());
    });
}

/**
 * `warren agent install --token T`: run the agent as a systemd service under an unprivileged user, so
 * it can be baked into a node image (one join token with --uses N serves the fleet; the name defaults
 * to each host's name). `--print` shows the unit and the environment file instead of installing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { ENV_PATH, UNIT_PATH, checkUnitOptions, renderAgentEnv, renderAgentUnit, type AgentUnitOptions } from '../../agent/systemdUnit.js';

// The unit runs the agent's own entry (`warren-agent`, the same command line as `warren agent`): it
// loads the agent alone, ~4 MiB less for a process that idles on every node (docs/benchmarks.md, finding 10).
const AGENT_BIN = fileURLToPath(new URL('../../../bin/warren-agent.cjs', import.meta.url));
const SERVICE = path.basename(UNIT_PATH);

interface InstallFlags {
  token: string;
  name?: string;
  user: string;
  dataDir: string;
  hub?: string;
  labels?: string;
  allow?: string;
  route?: string;
  cluster?: string;
  print?: boolean;
}

/** Adds `install` under the `agent` command. */
export function registerAgentInstall(agent: Command): void {
  // `warren agent install --token T`: without positional options `agent` itself would take --token,
  // --name and --data-dir (it has flags of the same names) before `install` saw them. The program
  // enables them too (main.ts), or `agent` would be handed the flags before the word `install`.
  agent.enablePositionalOptions();
  agent
    .command('install')
    .description('Write and enable a systemd unit that runs the agent as an unprivileged user (or --print it).')
    .requiredOption('--token <token>', 'join token; written to a root-only environment file, never the command line')
    .option('--name <name>', 'agent name (default: the host name at each start, so one unit fits a fleet image)')
    .option('--user <name>', 'system user the agent runs as (created with useradd --system if missing)', 'warren')
    .option('--data-dir <dir>', 'the agent identity (key, certificate, hub CA)', '/var/lib/warren')
    .option('--hub <url>', 'override the hub URL in the token')
    .option('--labels <k=v,...>', 'labels shown in `warren agents ls`')
    .option('--allow <patterns>', 'what the agent will dial (see `warren agent --help`)')
    .option('--route <routes>', 'CIDRs and DNS suffixes the agent serves')
    .option('--cluster <name>', 'Kubernetes cluster name(s) the agent serves')
    .option('--print', `print the unit and the environment file instead of writing ${UNIT_PATH} and ${ENV_PATH}`)
    .addHelpText('after', `
Examples:
  sudo warren agent install --token wj1.… --route 10.20.0.0/16
  warren agent install --token wj1.… --print      # for a node image: unit + env file on stdout`)
    .action(async (o: InstallFlags) => {
      process.exitCode = await installAgent(o);
    });
}

async function unitOptionsFrom(o: InstallFlags): Promise<AgentUnitOptions> {
  // The same validation the agent runs at start-up, now, rather than in a crash loop on every node.
  const { agentConfig } = await import('../../agent/config.js');
  agentConfig({ token: o.token, name: o.name, dataDir: o.dataDir, hub: o.hub, labels: o.labels, allow: o.allow, route: o.route, cluster: o.cluster }, {});
  const agentArgs: string[] = [];
  for (const [flag, value] of [['--name', o.name], ['--hub', o.hub], ['--labels', o.labels], ['--allow', o.allow], ['--route', o.route], ['--cluster', o.cluster]] as const) {
    if (value !== undefined) agentArgs.push(flag, value);
  }
  const options = { nodePath: process.execPath, agentBin: AGENT_BIN, user: o.user, dataDir: o.dataDir.replace(/\/+$/, '') || '/', envFile: ENV_PATH, agentArgs };
  checkUnitOptions(options);
  return options;
}

async function installAgent(o: InstallFlags): Promise<number> {
  const options = await unitOptionsFrom(o);
  const unit = renderAgentUnit(options);
  const env = renderAgentEnv(o.token);
  if (o.print) {
    process.stdout.write(`# ${UNIT_PATH}\n${unit}\n# ${ENV_PATH} (mode 0600, owner root)\n${env}`);
    return 0;
  }
  if (process.getuid?.() !== 0) throw new WarrenError('WARREN_E_CONFIG', 'installing a system service needs root: run with sudo, or use --print to see what would be written');
  if (/^\/(root|home)\//.test(AGENT_BIN)) {
    process.stderr.write(`warning: ${AGENT_BIN} is under /root or /home, which user "${o.user}" may not be able to read; install warren somewhere like /opt/warren or with npm -g\n`);
  }

  if (spawnSync('id', ['-u', o.user], { stdio: 'ignore' }).status !== 0) {
    run('useradd', ['--system', '--user-group', '--home-dir', options.dataDir, '--no-create-home', '--shell', '/usr/sbin/nologin', o.user]);
    process.stdout.write(`created system user ${o.user}\n`);
  }
  fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  run('chown', [`${o.user}:${o.user}`, options.dataDir]);
  fs.chmodSync(options.dataDir, 0o700);

  fs.mkdirSync(path.dirname(ENV_PATH), { recursive: true, mode: 0o755 });
  // Created 0600 before the secret is written, so it is never readable by others, not even briefly.
  fs.writeFileSync(ENV_PATH, '', { mode: 0o600 });
  fs.chmodSync(ENV_PATH, 0o600);
  fs.chownSync(ENV_PATH, 0, 0);
  fs.writeFileSync(ENV_PATH, env);
  fs.writeFileSync(UNIT_PATH, unit, { mode: 0o644 });
  process.stdout.write(`wrote ${UNIT_PATH} and ${ENV_PATH} (0600)\n`);

  if (!hasSystemctl()) {
    process.stdout.write(`systemd is not running here: enable the unit when it does (systemctl daemon-reload && systemctl enable --now ${SERVICE})\n`);
    return 0;
  }
  run('systemctl', ['daemon-reload']);
  run('systemctl', ['enable', '--now', SERVICE]);
  process.stdout.write(`${SERVICE} enabled and started; follow it with: journalctl -u ${SERVICE} -f\n`);
  return 0;
}

/** systemd is the running init (sd_booted(3)): a container may have systemctl without a systemd to talk to. */
function hasSystemctl(): boolean {
  return fs.existsSync('/run/systemd/system') && spawnSync('systemctl', ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || r.stdout).trim();
    throw new WarrenError('WARREN_E_CONFIG', `${cmd} ${args.join(' ')} failed: ${why}`);
  }
}

/**
 * The systemd unit `warren agent install` writes, and its environment file. Pure text, so it is tested
 * as text and `--print` shows exactly what would be installed.
 *
 * Choices, and why:
 * - The agent runs as an unprivileged system user; it needs no capability at all (it only dials out
 *   and connects to targets), so the bounding set is empty and NoNewPrivileges is set.
 * - The join token goes in a root-only EnvironmentFile (0600), read by systemd before it drops
 *   privileges, as WARREN_JOIN_TOKEN: never on the command line, where `ps` and the journal show it.
 *   The agent needs it only for its first start; later starts use the identity in the data dir.
 * - ProtectSystem=strict makes the whole file system read-only but the data dir (ReadWritePaths);
 *   under /var/lib it is also a StateDirectory, so systemd creates it owned by the user, and a unit
 *   printed for a node image works without a separate mkdir.
 * - No --name unless given: the agent then takes the host name, so one unit serves a whole fleet image.
 * - MemoryDenyWriteExecute is not set: V8's JIT needs writable-executable memory.
 */
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { AGENT_NODE_FLAGS } from '../shared/nodeFlags.js';

export const UNIT_PATH = '/etc/systemd/system/warren-agent.service';
export const ENV_PATH = '/etc/warren/agent.env';

export interface AgentUnitOptions {
  /** Absolute path of the node binary. */
  readonly nodePath: string;
  /** Absolute path of bin/warren-agent.cjs: the agent alone, without the rest of the CLI. */
  readonly agentBin: string;
  readonly user: string;
  readonly dataDir: string;
  readonly envFile: string;
  /** Extra `warren agent` flags, in order (e.g. ['--route', '10.20.0.0/16']). */
  readonly agentArgs: readonly string[];
}

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

export function checkUnitOptions(o: AgentUnitOptions): void {
  if (!USER.test(o.user)) throw new WarrenError('WARREN_E_USAGE', `--user "${o.user}" is not a valid system user name (lower-case letters, digits, _ and -)`);
  if (o.user === 'root') throw new WarrenError('WARREN_E_USAGE', '--user root defeats the point: the agent runs unprivileged; pick another user (default warren)');
  for (const [what, p] of [['--data-dir', o.dataDir], ['the env file', o.envFile], ['node', o.nodePath], ['warren-agent', o.agentBin]] as const) {
    if (!path.isAbsolute(p)) throw new WarrenError('WARREN_E_USAGE', `${what} must be an absolute path, not "${p}"`);
    if (/[\s"'\\%$]/.test(p)) throw new WarrenError('WARREN_E_USAGE', `${what} "${p}" contains whitespace, quotes or % $ \\; pick a plain path`);
    // The unit runs with PrivateTmp=yes: it sees an empty /tmp and /var/tmp of its own, so nothing there is reachable.
    if (/^\/(var\/)?tmp(\/|$)/.test(path.normalize(p))) {
      throw new WarrenError('WARREN_E_USAGE', `${what} ${p} is under /tmp or /var/tmp, which the service cannot see (PrivateTmp=yes); ${what === '--data-dir' ? 'pick a --data-dir like /var/lib/warren' : 'install warren somewhere lasting (npm install -g, or /opt/warren) and run this from there'}`);
    }
  }
  for (const a of o.agentArgs) if (/[\r\n]/.test(a)) throw new WarrenError('WARREN_E_USAGE', 'agent flags cannot contain line breaks');
}

/**
 * One ExecStart word: plain when it is only safe characters, else double-quoted with `\` and `"`
 * escaped. `%` (specifiers) and `$` (variable expansion) are doubled so systemd passes them literally.
 */
export function systemdWord(arg: string): string {
  const literal = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_.,:/=@+*-]+$/.test(literal)) return literal;
  return `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderAgentUnit(o: AgentUnitOptions): string {
  checkUnitOptions(o);
  const exec = [o.nodePath, ...AGENT_NODE_FLAGS, o.agentBin, '--data-dir', o.dataDir, ...o.agentArgs].map(systemdWord).join(' ');
  const varLib = '/var/lib/';
  const stateDir = o.dataDir.startsWith(varLib) && o.dataDir.length > varLib.length ? o.dataDir.slice(varLib.length).replace(/\/+$/, '') : undefined;
  return [
    '# Written by `warren agent install`. The join token is in the EnvironmentFile (root only, 0600);',
    '# after the first start the agent uses the identity in its data dir and the token is not needed.',
    '[Unit]',
    'Description=Warren agent (dials out to the Warren hub)',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${o.user}`,
    `Group=${o.user}`,
    `EnvironmentFile=${o.envFile}`,
    `ExecStart=${exec}`,
    'Restart=always',
    'RestartSec=5',
    'UMask=0077',
    ...(stateDir ? [`StateDirectory=${stateDir}`, 'StateDirectoryMode=0700'] : []),
    `ReadWritePaths=${o.dataDir}`,
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    // AF_NETLINK: getaddrinfo(AI_ADDRCONFIG), which Node's lookups use, asks the kernel over netlink.
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** The environment file: the join token as WARREN_JOIN_TOKEN (the agent's config reads it). */
export function renderAgentEnv(token: string): string {
  // Join tokens are base64url and dots; anything else would need quoting rules nobody should rely on.
  if (!/^[A-Za-z0-9._-]+$/.test(token)) throw new WarrenError('WARREN_E_USAGE', '--token is not a join token (wj1.…); copy it from `warren join-token create`');
  return `# Join token for the Warren agent; read by systemd (root) before it starts the agent.\nWARREN_JOIN_TOKEN=${token}\n`;
}

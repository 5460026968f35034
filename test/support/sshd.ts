/**
 * A real OpenSSH server for end-to-end tests, with throwaway host and client keys in a temp dir.
 *
 * @module
 * @example
 *   const sshd = await startSshd({ group: lab.group, netns: lab.ns('site'), host: '10.20.1.2' });
 *   const r = await lab.exec('site', 'ssh', [...sshd.sshArgs(), 'root@10.20.1.2', 'hostname']);
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atExit, type ChildGroup, runOk, waitForLine } from './proc.js';

export interface SshdOptions {
  /** Owner of the sshd process (a `ChildGroup`, or `lab.group`). */
  group: ChildGroup;
  /** Network namespace to run in; default: this process's namespace. */
  netns?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /**
   * Port; default 22 inside a namespace (always free there). Outside one, sshd cannot bind port 0, so a
   * random high port is tried and another is picked if sshd reports it taken (a retry, not a probe).
   */
  port?: number;
  timeoutMs?: number;
  /**
   * Run sshd in a UTS namespace of its own with this host name, so that `hostname` in its sessions
   * names the node (network namespaces share the machine's host name).
   */
  hostname?: string;
}

export interface Sshd {
  host: string;
  port: number;
  /** Temp dir with the config and keys; removed by `stop()`. */
  dir: string;
  clientKeyPath: string;
  /** A known_hosts file that pins this server's host key (use with `sshArgs({ strict: true })`). */
  knownHostsPath: string;
  child: ChildProcess;
  /**
   * Client options for ssh, scp or `ansible_ssh_common_args`, port included (`-o Port=`), target not.
   * By default host keys are not checked; `strict: true` checks against `knownHostsPath`.
   */
  sshArgs(opts?: { strict?: boolean }): string[];
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';

export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  const host = opts.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'warren-sshd-'));
  const unhook = atExit(() => rmSync(dir, { recursive: true, force: true }));
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    unhook();
  };
  try {
    // sshd refuses to start without its privilege-separation directory; a fresh container lacks it.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = join(dir, 'host_ed25519');
    const clientKeyPath = join(dir, 'client_ed25519');
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'warren-test-host', '-f', hostKey]);
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'warren-test-client', '-f', clientKeyPath]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKeyPath}.pub`));
    mkdirSync(join(dir, 'home'));

    const attempts = opts.port !== undefined || opts.netns ? [opts.port ?? 22] : randomPorts(5);
    let lastError: unknown;
    for (const port of attempts) {
      const configPath = join(dir, 'sshd_config');
      writeFileSync(configPath, sshdConfig({ dir, hostKey, host, port }));
      const sshd = [SSHD, '-D', '-e', '-f', configPath];
      // unshare and sh both exec: the child is sshd itself.
      const [cmd, ...args] = opts.hostname ? ['unshare', '--uts', 'sh', '-ec', 'hostname "$1"; shift; exec "$@"', 'sh', opts.hostname, ...sshd] : sshd;
      const child = opts.group.spawn(cmd!, args, { netns: opts.netns, stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        await waitForLine(child, /Server listening on/, { timeoutMs: opts.timeoutMs ?? 10_000, stream: 'stderr' });
      } catch (err) {
        await opts.group.kill(child);
        lastError = err;
        if (String(err).includes('Address already in use')) continue;
        throw err;
      }
      const knownHostsPath = join(dir, 'known_hosts');
      const hostPattern = port === 22 ? host : `[${host}]:${port}`;
      const [keyType, keyData] = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
      writeFileSync(knownHostsPath, `${hostPattern} ${keyType} ${keyData}\n`);
      return {
        host,
        port,
        dir,
        clientKeyPath,
        knownHostsPath,
        child,
        sshArgs: ({ strict = false } = {}) => [
          // The machine's own client configuration (~/.ssh/config, /etc/ssh/ssh_config) is not part of the test.
          '-F', '/dev/null',
          '-i', clientKeyPath,
          '-o', 'IdentitiesOnly=yes',
          '-o', 'BatchMode=yes',
          '-o', `Port=${port}`,
          '-o', 'ConnectTimeout=10',
          '-o', `StrictHostKeyChecking=${strict ? 'yes' : 'no'}`,
          '-o', `UserKnownHostsFile=${strict ? knownHostsPath : '/dev/null'}`,
          '-o', 'LogLevel=ERROR',
        ],
        stop: async () => {
          await opts.group.kill(child);
          cleanup();
        },
      };
    }
    throw lastError;
  } catch (err) {
    cleanup();
    throw err;
  }
}

function randomPorts(n: number): number[] {
  return Array.from({ length: n }, () => 20_000 + Math.floor(Math.random() * 40_000));
}

function sshdConfig(c: { dir: string; hostKey: string; host: string; port: number }): string {
  const listen = c.host.includes(':') ? `[${c.host}]:${c.port}` : `${c.host}:${c.port}`;
  return [
    `Port ${c.port}`,
    `ListenAddress ${listen}`,
    `HostKey ${c.hostKey}`,
    `AuthorizedKeysFile ${join(c.dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The keys live in a temp dir whose modes sshd would otherwise reject.
    'StrictModes no',
    'PidFile none',
    'PrintMotd no',
    'UseDNS no',
    // Sessions get a home of their own: the machine's root dotfiles (a shell rc that runs a version
    // manager, say) are not part of what a test runs, and one that waits on a lock hangs every session.
    `SetEnv HOME=${join(c.dir, 'home')}`,
    'AllowTcpForwarding yes',
    // Ansible copies modules over SFTP; internal-sftp needs no helper binary path.
    'Subsystem sftp internal-sftp',
    'LogLevel INFO',
    '',
  ].join('\n');
}

/**
 * The OpenSSH baseline: a throwaway sshd on loopback (test/support/sshd.ts: fresh host and client keys
 * in a temp dir) and an `ssh -R` client, the agent's counterpart, which asks sshd to listen and carries
 * every accepted connection back to the target over its one SSH connection.
 *
 * Nagle (checked with strace on OpenSSH 9.2): the ssh client sets TCP_NODELAY on its SSH connection
 * either way, and both ends set it on the forwarded sockets they accept or connect; but sshd sets it on
 * the SSH connection only when a session starts (ssh_packet_set_interactive). `ssh -N` opens none, so
 * the server side keeps Nagle on (≈ 200 new connections/s instead of ≈ 3,000); a session, here a remote
 * `exec sleep`, turns it off. `-o IPQoS` only changes the IP TOS byte. The bench measures both.
 */
import type { ChildProcess } from 'node:child_process';
import { ChildGroup, waitForLine } from '../../test/support/proc.js';
import type { Sshd } from '../../test/support/sshd.js';

export interface SshReverse {
  /** The port sshd listens on for the forwarded connections (the ssh -R listener). */
  readonly listenPort: number;
  readonly sshd: Sshd;
  readonly client: ChildProcess;
}

export async function startSshReverse(opts: {
  group: ChildGroup;
  sshd: Sshd;
  cipher: string;
  targetPort: number;
  /** true: `ssh -N` (no session, Nagle on the SSH connection); false: a session, TCP_NODELAY. */
  noSession: boolean;
}): Promise<SshReverse> {
  const { sshd } = opts;
  const args = [
    // ssh takes the first value of an option: INFO (for the "Allocated port" line) before sshArgs' ERROR.
    '-o', 'LogLevel=INFO',
    ...sshd.sshArgs(),
    '-o', 'ExitOnForwardFailure=yes',
    '-o', 'ServerAliveInterval=0',
    '-o', 'Compression=no',
    '-c', opts.cipher,
    '-R', `127.0.0.1:0:127.0.0.1:${opts.targetPort}`,
    ...(opts.noSession ? ['-N'] : []),
    'root@127.0.0.1',
    ...(opts.noSession ? [] : ['exec sleep 2147483647']),
  ];
  const client = opts.group.spawn('ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const m = await waitForLine(client, /Allocated port (\d+) for remote forward/, { timeoutMs: 15_000 });
  return { listenPort: Number(m[1]), sshd, client };
}

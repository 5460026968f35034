/**
 * Network topologies from Linux network namespaces, for end-to-end tests that need real NAT.
 *
 * Each `Lab` prefixes its namespaces with a random tag (`w3f9a1c-site`) so concurrent runs never
 * collide, and creates veth pairs directly inside the namespaces so nothing appears in the root
 * namespace. Interface names are per host (`eth0`, `eth1`, …), like a real machine's, so they stay
 * within the kernel's 15-character limit whatever the host names are.
 *
 * @module
 * @example
 *   const lab = new Lab();
 *   after(() => lab.destroy());
 *   await lab.addHost('a'); await lab.addHost('b');
 *   await lab.link('a', '10.1.0.1/24', 'b', '10.1.0.2/24');
 *   const r = await lab.exec('a', 'ping', ['-c1', '-W1', '10.1.0.2']);
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { atExit, ChildGroup, run, runOk, type RunOptions, type RunResult, type SpawnOpts } from './proc.js';

export interface LinkEnds {
  /** Interface name inside host A. */
  ifA: string;
  /** Interface name inside host B. */
  ifB: string;
}

export class Lab {
  /** Random prefix of every namespace this lab owns. */
  readonly tag = `w${randomBytes(3).toString('hex')}`;
  /** Processes started in the lab; `destroy()` kills them. Pass it to helpers such as `startUpstream`. */
  readonly group = new ChildGroup();
  private readonly hosts = new Map<string, { ns: string; nextIf: number }>();
  private destroyed = false;
  private readonly unhook: () => void;

  constructor() {
    // If the test process dies without teardown, still delete the namespaces (synchronously).
    this.unhook = atExit(() => {
      for (const { ns } of this.hosts.values()) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    });
  }

  /** The namespace name of a host, for `ip netns exec` or a `netns` option. */
  ns(host: string): string {
    const entry = this.hosts.get(host);
    if (!entry) throw new Error(`lab ${this.tag}: no host named ${host}`);
    return entry.ns;
  }

  async addHost(name: string): Promise<string> {
    if (this.destroyed) throw new Error(`lab ${this.tag} is destroyed`);
    if (this.hosts.has(name)) throw new Error(`lab ${this.tag}: host ${name} exists`);
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) throw new Error(`lab host name ${JSON.stringify(name)} is not a short label`);
    const ns = `${this.tag}-${name}`;
    // Registered before creation so a failure half-way is still cleaned up by destroy().
    this.hosts.set(name, { ns, nextIf: 0 });
    await runOk('ip', ['netns', 'add', ns]);
    await runOk('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Connects two hosts with a veth pair and addresses (`10.1.0.1/24`); returns the interface names. */
  async link(hostA: string, cidrA: string, hostB: string, cidrB: string): Promise<LinkEnds> {
    const a = this.hostEntry(hostA);
    const b = this.hostEntry(hostB);
    const ifA = `eth${a.nextIf++}`;
    const ifB = `eth${b.nextIf++}`;
    await runOk('ip', ['link', 'add', ifA, 'netns', a.ns, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.ns]);
    for (const [ns, ifName, cidr] of [[a.ns, ifA, cidrA], [b.ns, ifB, cidrB]] as const) {
      await runOk('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', ifName]);
      await runOk('ip', ['-n', ns, 'link', 'set', ifName, 'up']);
    }
    await Promise.all([waitOperUp(a.ns, ifA), waitOperUp(b.ns, ifB)]);
    return { ifA, ifB };
  }

  /** Adds a route in `host`: `dest` is a CIDR or `default`. */
  async route(host: string, dest: string, via: string): Promise<void> {
    await runOk('ip', ['-n', this.ns(host), 'route', 'add', dest, 'via', via]);
  }

  /** Source-NATs traffic leaving `host` through an interface (`eth0`) or coming from a CIDR (`10.2.0.0/24`). */
  async masquerade(host: string, outIfaceOrCidr: string): Promise<void> {
    const match = outIfaceOrCidr.includes('/') ? ['-s', outIfaceOrCidr] : ['-o', outIfaceOrCidr];
    await this.iptables(host, ['-t', 'nat', '-A', 'POSTROUTING', ...match, '-j', 'MASQUERADE']);
  }

  /** Runs iptables inside `host`; `-w` because the xtables lock is shared by every namespace. */
  async iptables(host: string, args: readonly string[]): Promise<void> {
    await runOk('iptables', ['-w', ...args], { netns: this.ns(host) });
  }

  async enableForwarding(host: string): Promise<void> {
    await runOk('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns: this.ns(host) });
  }

  /** Runs a command in `host` to completion (a non-zero exit is a result, not an error). */
  exec(host: string, cmd: string, args: readonly string[] = [], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return run(cmd, args, { ...opts, netns: this.ns(host) });
  }

  /** Starts a long-running process in `host`, killed by `destroy()`. */
  spawn(host: string, cmd: string, args: readonly string[] = [], opts: Omit<SpawnOpts, 'netns'> = {}): ChildProcess {
    return this.group.spawn(cmd, args, { ...opts, netns: this.ns(host) });
  }

  /** Kills the lab's processes, then anything else still inside its namespaces, then the namespaces. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.group.killAll();
    for (const { ns } of this.hosts.values()) {
      // Daemons that detached from their group (sshd sessions call setsid) are found by namespace.
      const pids = await run('ip', ['netns', 'pids', ns]).catch(() => undefined);
      for (const pid of pids?.stdout.split(/\s+/).filter(Boolean) ?? []) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
    this.hosts.clear();
    this.group.dispose();
    this.unhook();
  }

  private hostEntry(host: string): { ns: string; nextIf: number } {
    this.ns(host);
    return this.hosts.get(host)!;
  }
}

/**
 * Waits until an interface is operationally up. The veth end brought up first gets its carrier from the
 * kernel's asynchronous linkwatch work, and until that runs it can drop what it sends (a lost SYN costs a
 * test a 1 s retransmit). There is no event to wait on short of a netlink monitor that cannot say when
 * it has subscribed, so this checks the state itself, under a deadline.
 */
async function waitOperUp(ns: string, ifName: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await runOk('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifName]);
    const [info] = JSON.parse(stdout) as Array<{ operstate?: string }>;
    if (info?.operstate === 'UP') return;
    if (Date.now() > deadline) throw new Error(`${ifName} in ${ns} not up after ${timeoutMs} ms: ${stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---------------------------------------------------------------------------------------------
// The main scenario: a hub on a public network, agents on private networks behind a NAT router.

export interface SiteHost {
  host: string;
  /** The site host's own address (private, unreachable from `public`). */
  ip: string;
  subnet: string;
  /** The router's address on this site's network (the site's default gateway). */
  gateway: string;
}

export interface NatLab {
  lab: Lab;
  public: { host: 'public'; ip: string; subnet: string };
  router: { host: 'router'; publicIp: string; publicIf: string };
  /** The first site; the same object as `sites[0]`. */
  site: SiteHost;
  sites: SiteHost[];
  destroy(): Promise<void>;
}

export interface NatLabOptions {
  /** Site host names; default `['site']`. Site k (from 1) gets 10.20.k.0/24. */
  sites?: string[];
}

/**
 * ```
 *  public 10.10.0.1 ── 10.10.0.2 router 10.20.k.1 ── 10.20.k.2 site(k)
 * ```
 * The router MASQUERADEs everything leaving its public interface and drops new connections arriving on
 * it, like a home or cloud NAT gateway. `public` has no route to any 10.20.x network: whatever a test
 * reaches in a site, it reaches through something the site dialled out.
 */
export async function natLab(opts: NatLabOptions = {}): Promise<NatLab> {
  const siteNames = opts.sites ?? ['site'];
  if (siteNames.length === 0 || siteNames.length > 200) throw new Error('natLab needs 1..200 sites');
  const lab = new Lab();
  try {
    await lab.addHost('public');
    await lab.addHost('router');
    const { ifB: publicIf } = await lab.link('public', '10.10.0.1/24', 'router', '10.10.0.2/24');
    await lab.enableForwarding('router');
    await lab.masquerade('router', publicIf);
    await lab.iptables('router', ['-A', 'FORWARD', '-i', publicIf, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP']);

    const sites: SiteHost[] = [];
    for (const [i, host] of siteNames.entries()) {
      const k = i + 1;
      await lab.addHost(host);
      await lab.link('router', `10.20.${k}.1/24`, host, `10.20.${k}.2/24`);
      await lab.route(host, 'default', `10.20.${k}.1`);
      sites.push({ host, ip: `10.20.${k}.2`, subnet: `10.20.${k}.0/24`, gateway: `10.20.${k}.1` });
    }
    return {
      lab,
      public: { host: 'public', ip: '10.10.0.1', subnet: '10.10.0.0/24' },
      router: { host: 'router', publicIp: '10.10.0.2', publicIf },
      site: sites[0]!,
      sites,
      destroy: () => lab.destroy(),
    };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

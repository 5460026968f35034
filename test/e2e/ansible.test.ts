// Acceptance: Ansible against a fleet behind NAT, the Konvoy-behind-NAT use case.
//
//   public 10.10.0.1 (hub :8443, ansible)  ──  router (MASQUERADE, drops inbound)  ──┬─ node1 10.20.1.2 (agent node1, sshd :22)
//                                                                                    └─ node2 10.20.2.2 (agent node2, sshd :22)
//
// Both agents join with ONE reusable join token (--uses 2, labels), the way a node image carries it;
// agent names are the node names. From `public`, `ansible all -m ping` and a two-task playbook must
// succeed against both through `ansible_ssh_common_args='-o ProxyCommand="warren connect %h:%p"'`, and
// the playbook must really have run on each node: each node reports its own address and network
// namespace, written to a file by the second task.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { natLab, type NatLab } from '../support/netns.js';
import { startSshd, type Sshd } from '../support/sshd.js';
import { accessToken, cli, cliJson, joinToken, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

const NODES = ['node1', 'node2'];

describe('Ansible through `warren connect` against two nodes behind NAT', () => {
  let nat: NatLab;
  let hub: HubProc;
  const sshds = new Map<string, Sshd>();
  const dirs: string[] = [];
  const work = tempDir('ansible');
  dirs.push(work);
  let env: NodeJS.ProcessEnv;
  let inventory: string;

  before(async () => {
    nat = await natLab({ sites: NODES });
    const { lab } = nat;
    hub = await startHub({ group: lab.group, netns: lab.ns('public'), listen: `${nat.public.ip}:8443`, publicUrl: `https://${nat.public.ip}:8443` });
    dirs.push(hub.dataDir);
    // One token for the whole fleet, as baked into a node image.
    const fleetToken = await joinToken(hub, ['--uses', String(NODES.length), '--labels', 'role=node']);
    for (const node of NODES) {
      const agent = await startAgent({ group: lab.group, hub, name: node, token: fleetToken, netns: lab.ns(node) });
      dirs.push(agent.dataDir);
      const sshd = await startSshd({ group: lab.group, netns: lab.ns(node), host: '0.0.0.0' });
      sshds.set(node, sshd);
      dirs.push(sshd.dir);
    }
    const token = await accessToken(hub, 'installer');
    const g = await cli(hub, ['grant', '--user', 'installer', '--agent', 'node*', '--ports', '22']);
    assert.equal(g.code, 0, g.stderr);

    const proxyCommand = `${process.execPath} ${WARREN_BIN} connect %h:%p`;
    inventory = path.join(work, 'inventory.ini');
    fs.writeFileSync(
      inventory,
      [
        '[nodes]',
        ...NODES.map((n) => `${n} ansible_ssh_private_key_file=${sshds.get(n)!.clientKeyPath}`),
        '',
        '[nodes:vars]',
        'ansible_user=root',
        'ansible_python_interpreter=/usr/bin/python3',
        `ansible_ssh_common_args='-F /dev/null -o ProxyCommand="${proxyCommand}" -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null'`,
        '',
      ].join('\n'),
    );
    env = {
      ...hub.env(token),
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_LOCAL_TEMP: path.join(work, 'local-tmp'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(work, 'cp'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
      LANG: 'C.UTF-8',
    };
  });

  after(async () => {
    await nat?.destroy();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('both agents joined with the same token, under their node names, with its labels', async () => {
    const agents = await cliJson<Array<{ name: string; connected: boolean; labels: Record<string, string> }>>(hub, ['agents', 'ls']);
    for (const node of NODES) {
      const a = agents.find((x) => x.name === node);
      assert.ok(a?.connected, `${node} connected: ${JSON.stringify(agents)}`);
      assert.equal(a.labels.role, 'node');
    }
    const tokens = await cliJson<Array<{ uses: number; used: number }>>(hub, ['join-token', 'ls']);
    assert.deepEqual(tokens.map((t) => [t.used, t.uses]), [[2, 2]]);
  });

  it('ansible all -m ping succeeds on both nodes', async () => {
    const r = await nat.lab.exec('public', 'ansible', ['all', '-i', inventory, '-m', 'ping', '-o'], { env, cwd: work, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    for (const node of NODES) assert.match(r.stdout, new RegExp(`^${node} \\| SUCCESS .*"ping": "pong"`, 'm'), r.stdout);
    // Ansible keeps each ssh connection as a ControlPersist master for a minute: its stream through
    // the agent is still open (and its audit row, written at the end of a stream, not yet there).
    const agents = await cliJson<Array<{ name: string; streamsOpen: number }>>(hub, ['agents', 'ls']);
    for (const node of NODES) assert.ok((agents.find((a) => a.name === node)?.streamsOpen ?? 0) >= 1, `a stream open through ${node}: ${JSON.stringify(agents)}`);
  });

  it('a two-task playbook runs on each node, in its own namespace', async () => {
    const playbook = path.join(work, 'site.yml');
    fs.writeFileSync(
      playbook,
      [
        '- hosts: nodes',
        '  gather_facts: false',
        '  tasks:',
        '    - name: where am I',
        '      shell: "ip -4 -o addr show; readlink /proc/self/ns/net"',
        '      register: where',
        '    - name: record it',
        '      copy:',
        `        dest: "${work}/ran-{{ inventory_hostname }}.txt"`,
        '        content: "{{ where.stdout }}\\n"',
        '',
      ].join('\n'),
    );
    const r = await nat.lab.exec('public', 'ansible-playbook', ['-i', inventory, playbook], { env, cwd: work, timeoutMs: 180_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    for (const node of NODES) assert.match(r.stdout, new RegExp(`^${node}\\s+: ok=2\\s+changed=2\\s+unreachable=0\\s+failed=0`, 'm'), r.stdout);

    for (const [k, node] of NODES.entries()) {
      const ran = fs.readFileSync(path.join(work, `ran-${node}.txt`), 'utf8');
      const ns = (await nat.lab.exec(node, 'readlink', ['/proc/self/ns/net'])).stdout.trim();
      assert.ok(ran.includes(` 10.20.${k + 1}.2/24 `), `${node} reports its address:\n${ran}`);
      assert.ok(ran.trim().endsWith(ns), `${node} ran in its own namespace ${ns}:\n${ran}`);
      assert.ok(!ran.includes(nat.public.ip), `${node} is not the public host:\n${ran}`);
    }
  });
});

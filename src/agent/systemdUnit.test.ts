import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WarrenError } from '../shared/errors.js';
import { renderAgentEnv, renderAgentUnit, systemdWord, type AgentUnitOptions } from './systemdUnit.js';

const TOKEN = 'wj1.aHR0cHM6Ly9odWIuZXhhbXBsZS5jb206ODQ0Mw.' + 'a'.repeat(64) + '.0123456789abcdef.' + 'S'.repeat(43);

const base: AgentUnitOptions = {
  nodePath: '/usr/bin/node',
  agentBin: '/opt/warren/bin/warren-agent.cjs',
  user: 'warren',
  dataDir: '/var/lib/warren',
  envFile: '/etc/warren/agent.env',
  agentArgs: ['--route', '10.20.0.0/16,.corp.internal', '--labels', 'site=dmz,rack=r 7'],
};

function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

test('the unit runs the agent unprivileged, hardened, token from the root-only env file', () => {
  const unit = renderAgentUnit(base);
  const d = directives(unit);
  assert.deepEqual(d.get('User'), ['warren']);
  assert.deepEqual(d.get('Group'), ['warren']);
  assert.deepEqual(d.get('EnvironmentFile'), ['/etc/warren/agent.env']);
  assert.deepEqual(d.get('ExecStart'), [
    '/usr/bin/node --max-semi-space-size=1 --heap-growing-percent=300 /opt/warren/bin/warren-agent.cjs --data-dir /var/lib/warren --route 10.20.0.0/16,.corp.internal --labels "site=dmz,rack=r 7"',
  ]);
  assert.deepEqual(d.get('Restart'), ['always']);
  assert.deepEqual(d.get('NoNewPrivileges'), ['yes']);
  assert.deepEqual(d.get('ProtectSystem'), ['strict']);
  assert.deepEqual(d.get('ReadWritePaths'), ['/var/lib/warren']);
  assert.deepEqual(d.get('StateDirectory'), ['warren'], 'under /var/lib systemd creates the data dir for the user');
  assert.deepEqual(d.get('CapabilityBoundingSet'), ['']);
  assert.deepEqual(d.get('WantedBy'), ['multi-user.target']);
  assert.ok(!d.has('MemoryDenyWriteExecute'), "V8's JIT needs W+X memory");
  assert.match(unit, /^\[Unit\]$/m);
  assert.match(unit, /^\[Service\]$/m);
  assert.match(unit, /^\[Install\]$/m);
  assert.ok(!unit.includes('wj1.'), 'the token is not in the unit');
  assert.ok(!d.get('ExecStart')![0]!.includes('--token'), 'the token is not on the command line');
  assert.ok(!d.get('ExecStart')![0]!.includes('--name'), 'no --name: each host uses its own name');
});

test('a data dir outside /var/lib gets ReadWritePaths only', () => {
  const d = directives(renderAgentUnit({ ...base, dataDir: '/srv/warren-agent', agentArgs: ['--name', 'node7'] }));
  assert.deepEqual(d.get('ReadWritePaths'), ['/srv/warren-agent']);
  assert.equal(d.get('StateDirectory'), undefined);
  assert.deepEqual(d.get('ExecStart'), ['/usr/bin/node --max-semi-space-size=1 --heap-growing-percent=300 /opt/warren/bin/warren-agent.cjs --data-dir /srv/warren-agent --name node7']);
});

test('the env file carries the token as WARREN_JOIN_TOKEN', () => {
  const env = renderAgentEnv(TOKEN);
  assert.match(env, new RegExp(`^WARREN_JOIN_TOKEN=${TOKEN.replace(/\./g, '\\.')}$`, 'm'));
  assert.throws(() => renderAgentEnv('x"; rm -rf /'), (e: WarrenError) => e.code === 'WARREN_E_USAGE' && !e.message.includes('rm -rf'));
});

test('ExecStart words: systemd specifiers and variables are escaped, spaces quoted', () => {
  assert.equal(systemdWord('10.20.0.0/16'), '10.20.0.0/16');
  assert.equal(systemdWord('a b'), '"a b"');
  assert.equal(systemdWord('100%'), '"100%%"');
  assert.equal(systemdWord('$HOME'), '"$$HOME"');
  assert.equal(systemdWord('say "hi"\\'), '"say \\"hi\\"\\\\"');
});

test('bad options are refused before anything is written', () => {
  const bad: Array<Partial<AgentUnitOptions>> = [
    { user: 'root' },
    { user: 'Bad User' },
    { dataDir: 'relative/dir' },
    { dataDir: '/var/lib/war ren' },
    { agentArgs: ['--labels', 'a=b\nExecStartPre=/bin/sh'] },
  ];
  for (const b of bad) assert.throws(() => renderAgentUnit({ ...base, ...b }), (e: WarrenError) => e.code === 'WARREN_E_USAGE', JSON.stringify(b));
});

test('paths under /tmp or /var/tmp are refused: the unit has PrivateTmp=yes and would not see them', () => {
  const hidden: Array<Partial<AgentUnitOptions>> = [
    { dataDir: '/tmp/warren' },
    { dataDir: '/var/tmp/w' },
    { agentBin: '/tmp/warren-checkout/bin/warren-agent.cjs' },
    { nodePath: '/tmp/node-v20/bin/node' },
    { dataDir: '/var/lib/../../tmp/x' },
  ];
  for (const h of hidden) {
    assert.throws(() => renderAgentUnit({ ...base, ...h }), (e: WarrenError) => e.code === 'WARREN_E_USAGE' && /PrivateTmp=yes/.test(e.message), JSON.stringify(h));
  }
  assert.match(renderAgentUnit({ ...base, dataDir: '/var/lib/tmpdata' }), /PrivateTmp=yes/);
});

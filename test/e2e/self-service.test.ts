// Acceptance: self-service for a user who is not an admin, with the real CLI against a real hub and
// agents. `warren ls` lists exactly what ana's grants reach (two of three agents, with live status; the
// one killed shows offline once the hub has seen its tunnel drop), `warren whoami` shows hub, user,
// groups and token expiry, `warren route explain` and `warren audit` work for her own identity, and
// asking about bob is refused with 403 WARREN_E_FORBIDDEN (exit 1, the code on stderr). Nothing of
// bob's grants or rows reaches her.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { waitForAudit } from '../support/audit.js';
import { ChildGroup } from '../support/proc.js';
import { accessToken, cli, cliJson, startAgent, startHub, stopProcess, type AgentProc, type HubProc } from '../support/warren.js';

describe('self-service: warren ls, whoami, route explain and audit for a non-admin', () => {
  const procs = new ChildGroup();
  const dirs: string[] = [];
  let hub: HubProc;
  let nodeB: AgentProc;
  let ana: string;
  let bob: string;
  let anaGrant: string;

  before(async () => {
    hub = await startHub({ group: procs });
    dirs.push(hub.dataDir);
    for (const name of ['node-a', 'node-b', 'vault']) {
      const agent = await startAgent({ group: procs, hub, name });
      dirs.push(agent.dataDir);
      if (name === 'node-b') nodeB = agent;
    }
    ana = await accessToken(hub, 'ana', ['dev']);
    bob = await accessToken(hub, 'bob');
    anaGrant = (await cliJson<{ id: string }>(hub, ['grant', '--user', 'ana', '--agent', 'node-*', '--ports', '22'])).id;
    await cliJson(hub, ['grant', '--user', 'bob', '--agent', 'vault', '--host', 'secrets.internal']);
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('warren whoami: hub, user, groups and token expiry as ATTRIBUTE/VALUE', async () => {
    const r = await cli(hub, ['whoami'], { token: ana });
    assert.equal(r.code, 0, r.stderr);
    const rows = new Map(r.stdout.trim().split('\n').slice(1).map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ')).trim()]));
    assert.match(r.stdout, /^ATTRIBUTE\s+VALUE\n/);
    assert.equal(rows.get('user'), 'ana');
    assert.equal(rows.get('groups'), 'dev');
    assert.equal(rows.get('admin'), 'no');
    assert.ok(rows.get('hub')?.startsWith(hub.url), r.stdout);
    assert.match(rows.get('expires') ?? '', /^\d{4}-\d\d-\d\dT.*Z \(in 7h59m\)$|^\d{4}-\d\d-\d\dT.*Z \(in 8h0m\)$/);
    const json = await cliJson<{ user: string; expiresAt: string; hub: { caFingerprint: string } }>(hub, ['whoami'], { token: ana });
    assert.deepEqual([json.user, json.hub.caFingerprint], ['ana', hub.caPin]);
  });

  it('warren ls: exactly the agents, hosts and ports her grant reaches, online, and nothing of bob', async () => {
    const r = await cli(hub, ['ls'], { token: ana });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^AGENT\s+STATUS\s+RTT\s+HOSTS\s+PORTS\s+ROUTES\s+LABELS\s+GRANT$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/).filter((_, i) => [0, 1, 3, 4].includes(i))), [
      ['node-a', 'online', '*', '22'],
      ['node-b', 'online', '*', '22'],
    ]);
    assert.ok(!/vault|bob|secrets/.test(r.stdout), r.stdout);
    const json = await cliJson<{ targets: Array<{ agent: string; grant: string }>; grants: Array<{ id: string }> }>(hub, ['ls'], { token: ana });
    assert.deepEqual(json.targets.map((t) => [t.agent, t.grant]), [['node-a', anaGrant], ['node-b', anaGrant]]);
    assert.deepEqual(json.grants.map((g) => g.id), [anaGrant]);
    const yaml = await cli(hub, ['ls', '-o', 'yaml'], { token: ana });
    assert.match(yaml.stdout, /^user: ana$/m);
  });

  it("warren ls shows an agent offline once the hub has seen its tunnel drop", async () => {
    await stopProcess(nodeB.child, 'SIGKILL');
    await waitForAudit(hub, (row) => row.agent === 'node-b' && /^disconnected/.test(row.reason ?? ''), 'node-b disconnected', 15_000, 'agent');
    const json = await cliJson<{ targets: Array<{ agent: string; connected: boolean }> }>(hub, ['ls'], { token: ana });
    assert.deepEqual(json.targets.map((t) => [t.agent, t.connected]), [['node-a', true], ['node-b', false]]);
  });

  it('warren route explain and warren audit work for her own identity', async () => {
    const ok = await cliJson<{ user: string; allowed: boolean; agent: string }>(hub, ['route', 'explain', 'node-a:22'], { token: ana });
    assert.deepEqual([ok.user, ok.allowed, ok.agent], ['ana', true, 'node-a']);
    const denied = await cli(hub, ['route', 'explain', 'vault:22'], { token: ana });
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stdout, /access: +denied: no grant/);
    // A real denied connection of hers, and one of bob's.
    assert.notEqual((await cli(hub, ['connect', 'vault:22'], { token: ana, input: '' })).code, 0);
    assert.notEqual((await cli(hub, ['connect', 'node-a:22'], { token: bob, input: '' })).code, 0);
    const rows = await cliJson<Array<{ user: string; target: string; result: string }>>(hub, ['audit', '--kind', 'stream'], { token: ana });
    assert.deepEqual(rows.map((x) => [x.user, x.target, x.result]), [['ana', 'vault:22', 'denied']]);
    const admin = await cliJson<Array<{ user: string }>>(hub, ['audit', '--kind', 'stream']);
    assert.deepEqual(admin.map((x) => x.user).sort(), ['ana', 'bob']);
  });

  it('asking about another user is refused: exit 1 with WARREN_E_FORBIDDEN', async () => {
    for (const args of [['ls', '--user', 'bob'], ['audit', '--user', 'bob'], ['route', 'explain', 'vault:22', '--user', 'bob']]) {
      const r = await cli(hub, args, { token: ana });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /only admins .*\[WARREN_E_FORBIDDEN\]\n$/, args.join(' '));
    }
    const asAdmin = await cliJson<{ targets: Array<{ agent: string; hosts: string }> }>(hub, ['ls', '--user', 'bob']);
    assert.deepEqual(asAdmin.targets.map((t) => [t.agent, t.hosts]), [['vault', 'secrets.internal']]);
  });
});

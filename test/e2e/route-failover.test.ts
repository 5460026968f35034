// Acceptance: routes shared by several agents (design §3 rule 3) share new connections and fail over.
//
// Two agents, gw-a and gw-b, advertise the same CIDR (127.0.0.0/8: both reach the upstream on this
// host's loopback). `warren route explain` names the rule, the route, both candidates and the grant.
// New connections spread over both. Then one agent is killed with SIGKILL (no goodbye to the hub) and
// the very next connections — made at once, before anyone waits for the hub to notice — succeed
// through the survivor: the audit rows name it. Once the hub has seen the tunnel drop, `route
// explain` shows the survivor connected and the dead agent not.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { RouteExplanation } from '../../src/hub/routeExplain.js';
import { waitForAudit, type AuditRow } from '../support/audit.js';
import { ChildGroup, run } from '../support/proc.js';
import { startUpstream, type Upstream } from '../support/upstreams.js';
import { accessToken, cli, cliJson, startAgent, startHub, type AgentProc, type HubProc } from '../support/warren.js';

const ROUTE = '127.0.0.0/8';
const AGENTS = ['gw-a', 'gw-b'] as const;

describe('two agents with the same route: load sharing, failover, and route explain', () => {
  const procs = new ChildGroup();
  const dirs: string[] = [];
  let hub: HubProc;
  const agents = new Map<string, AgentProc>();
  let http: Upstream;
  let target: string;
  let before1: string;
  let after1: string;

  before(async () => {
    hub = await startHub({ group: procs });
    dirs.push(hub.dataDir);
    for (const name of AGENTS) {
      const agent = await startAgent({ group: procs, hub, name, args: ['--route', ROUTE] });
      agents.set(name, agent);
      dirs.push(agent.dataDir);
    }
    http = await startUpstream('http', { group: procs, listen: '127.0.0.1:0', body: 'failover' });
    target = `127.0.0.1:${http.port}`;
    // Two users with the same grant, so the rows before and after the kill are told apart by user.
    before1 = await accessToken(hub, 'ana');
    after1 = await accessToken(hub, 'bob');
    for (const user of ['ana', 'bob']) {
      const g = await cli(hub, ['grant', '--user', user, '--agent', 'gw-*', '--host', ROUTE]);
      assert.equal(g.code, 0, g.stderr);
    }
  });

  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** One HTTP request through the hub's CONNECT door as the token's user; the body. */
  async function get(token: string): Promise<string> {
    const r = await run(
      'curl',
      ['-sS', '-p', '--max-time', '20', '-x', hub.url, '--proxy-cacert', hub.caPath, '--proxy-header', `Proxy-Authorization: Bearer ${token}`, `http://${target}/`],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }

  /** Waits until `n` ok stream rows of `user` to the target are in the audit; returns them. */
  async function rowsOf(user: string, n: number): Promise<AuditRow[]> {
    const rows: AuditRow[] = [];
    await waitForAudit(hub, (row) => {
      if (row.user === user && row.target === target && row.result === 'ok') rows.push(row);
      return rows.length >= n;
    }, `${n} streams of ${user}`);
    return rows;
  }

  it('route explain: rule 3, the shared route, both candidates connected, the grant that allows it', async () => {
    const e = await cliJson<RouteExplanation>(hub, ['route', 'explain', target, '--user', 'ana']);
    assert.equal(e.rule, 3);
    assert.equal(e.route, ROUTE);
    assert.equal(e.dialHost, '127.0.0.1');
    assert.ok(AGENTS.includes(e.agent as (typeof AGENTS)[number]), `agent ${e.agent}`);
    assert.deepEqual(e.candidates.map((c) => [c.agent, c.connected, c.route, c.selected, c.allowed]).sort(), [
      ['gw-a', true, ROUTE, true, true],
      ['gw-b', true, ROUTE, true, true],
    ]);
    assert.equal(e.allowed, true);
    assert.match(e.grantText, /^grant g_\w+ \(user:ana agent=gw-\* host=127\.0\.0\.0\/8\)$/);
    assert.equal(e.refusal, null);

    const nobody = await cliJson<RouteExplanation>(hub, ['route', 'explain', target, '--user', 'mallory']);
    assert.equal(nobody.allowed, false);
    assert.equal(nobody.grantText, 'no grant');
    assert.equal(nobody.refusal?.code, 'WARREN_E_FORBIDDEN');
    const table = await cli(hub, ['route', 'explain', target, '--user', 'mallory']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /access:\s+denied: no grant/);
  });

  it('new connections are shared by both agents', async () => {
    // Equal load is broken at random; 16 connections all on one agent would be a 1 in 2^15 fluke.
    for (let i = 0; i < 16; i++) assert.match(await get(before1), /marker=failover/);
    const rows = await rowsOf('ana', 16);
    assert.deepEqual([...new Set(rows.map((r) => r.agent))].sort(), [...AGENTS]);
  });

  it('after kill -9 of one agent the next connections go through the survivor', async () => {
    const dead = 'gw-a';
    const survivor = 'gw-b';
    process.kill(agents.get(dead)!.child.pid!, 'SIGKILL');
    // At once: the hub may not have noticed yet, and must then fail over to the other agent itself.
    for (let i = 0; i < 4; i++) assert.match(await get(after1), /marker=failover/);
    const rows = await rowsOf('bob', 4);
    assert.deepEqual(rows.map((r) => r.agent), [survivor, survivor, survivor, survivor]);
  });

  it('route explain then shows the survivor connected and the dead agent not', async () => {
    await waitForAudit(hub, (row) => row.agent === 'gw-a' && (row.reason ?? '').startsWith('disconnected'), 'gw-a disconnecting', 10_000, 'agent');
    const e = await cliJson<RouteExplanation>(hub, ['route', 'explain', target, '--user', 'bob']);
    assert.equal(e.rule, 3);
    assert.equal(e.agent, 'gw-b');
    assert.deepEqual(e.candidates.map((c) => [c.agent, c.connected, c.selected]), [
      ['gw-b', true, true],
      ['gw-a', false, false],
    ]);
    assert.equal(e.allowed, true);
  });
});

// `warren hub --agent-gc-after D`: an agent that has not been connected for D is removed (audited),
// and its old identity is refused for good; a connected agent stays however long it has been up.
// For agents that come and go with pods: without it every replaced pod stays "offline" forever.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitForAudit } from '../support/audit.js';
import { ChildGroup, waitForExit } from '../support/proc.js';
import { cliJson, startAgent, startHub, WARREN_BIN, type HubProc } from '../support/warren.js';

const GC_AFTER = '2s';

describe('agent garbage collection (--agent-gc-after)', () => {
  const procs = new ChildGroup();
  let hub: HubProc;

  before(async () => {
    hub = await startHub({ group: procs, args: ['--agent-gc-after', GC_AFTER] });
  });
  after(() => procs.killAll());

  it('removes an agent gone longer than the limit, audits it, refuses its identity; keeps a connected one', { timeout: 60_000 }, async () => {
    const stays = await startAgent({ group: procs, hub, name: 'stays' });
    const gone = await startAgent({ group: procs, hub, name: 'gone' });
    await procs.kill(gone.child);
    const stoppedAt = Date.now();

    const row = await waitForAudit(hub, (r) => r.agent === 'gone' && (r.reason ?? '').startsWith('agent removed'), 'the removal of agent "gone"', 15_000, 'agent');
    assert.match(row.reason ?? '', /^agent removed: not connected for \d+s \(--agent-gc-after 2s\); certificate revoked$/);
    assert.equal(row.result, 'ok');
    assert.ok(Date.now() - stoppedAt >= 2_000, 'removed before the limit');
    const names = (await cliJson<{ name: string }[]>(hub, ['agents', 'ls'])).map((a) => a.name);
    assert.deepEqual(names, ['stays'], 'the connected agent must stay, the gone one must go');
    assert.equal(stays.child.exitCode, null);

    // The old identity cannot come back: the hub refuses it and the agent says to join again.
    const back = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--data-dir', gone.dataDir]);
    const exit = await waitForExit(back, 20_000);
    assert.equal(exit.code, 1, exit.stderr);
    assert.match(exit.stderr, /removed|unknown|not registered|revoked/i);
  });
});

// Mistakes a new user makes, each answered with a clear message and a next step, never "internal
// error", or made impossible: a second hub on a data dir in use, a --listen port that is taken, a
// forward on the hub's own port, a removed agent started again with a new join token, a data dir
// started without --name.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { parseJoinToken } from '../../src/shared/joinToken.js';
import { ChildGroup, run, waitForExit, waitForReady } from '../support/proc.js';
import { cli, cliJson, joinToken, startAgent, startHub, stopProcess, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

interface ForwardRow { name: string; listening: boolean; address: string | null; lastError: { code: string; message: string } | null }
interface AgentRow { name: string; connected: boolean }

describe('start-up traps', () => {
  const group = new ChildGroup();
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ group });
  });
  after(() => group.killAll());

  async function hubFails(args: readonly string[], pattern: RegExp): Promise<void> {
    const r = await run(process.execPath, [WARREN_BIN, 'hub', ...args], { env: { ...process.env, WARREN_LOG_FORMAT: 'json' }, timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    const last = r.stderr.trim().split('\n').at(-1)!;
    assert.match(last, pattern);
    assert.doesNotMatch(r.stderr, /internal error|WARREN_E_INTERNAL/);
  }

  it('a second hub on the same data dir is refused, naming the hub that holds it', async () => {
    await hubFails(['--listen', '127.0.0.1:0', '--data-dir', hub.dataDir], new RegExp(`another hub \\(pid ${hub.child.pid}\\) is using the data dir .*\\[WARREN_E_CONFIG\\]`));
  });

  it('a --listen port already in use says so and what to do', async () => {
    await hubFails(['--listen', `127.0.0.1:${hub.port}`, '--data-dir', tempDir('hub2')], /cannot listen on 127\.0\.0\.1:\d+: the address is in use; pick another --listen .*\[WARREN_E_CONFIG\]/);
  });

  it("a forward on the hub's own port is refused when created; one stored before the hub moved there fails alone", { timeout: 90_000 }, async () => {
    const refused = await cli(hub, ['forwards', 'create', 'own', '--entry', `hub:${hub.port}`, '--target', '127.0.0.1:9']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr, `error: entry: hub:0.0.0.0:${hub.port} is the hub's own --listen port (127.0.0.1:${hub.port}); pick another port\n`);
    assert.deepEqual((await cliJson<ForwardRow[]>(hub, ['forwards', 'ls'])).map((f) => f.name), []);

    // A forward on a free port, then the hub restarted with --listen on that port: before, the stored
    // forward took the port first and the hub could not start.
    const other = await startHub({ group });
    const made = await cliJson<ForwardRow>(other, ['forwards', 'create', 'later', '--entry', 'hub:127.0.0.1:0', '--target', '127.0.0.1:9']);
    const port = Number(made.address!.split(':').at(-1));
    await stopProcess(other.child);
    const moved = await startHub({ ...other.options, listen: `127.0.0.1:${port}` });
    assert.equal(moved.port, port);
    const later = await cliJson<ForwardRow>(moved, ['forwards', 'show', 'later']);
    assert.equal(later.listening, false);
    assert.equal(later.lastError?.code, 'WARREN_E_LISTEN_FAILED');
    assert.equal(later.lastError.message, `hub:127.0.0.1:${port} is the hub's own --listen port (127.0.0.1:${port}): not listening; remove it with \`warren forwards rm later\` and create it on another port`);
  });

  /** `warren agent` on a data dir, JSON logs; `--name` only when given in `args`. */
  function spawnAgent(dataDir: string, env: NodeJS.ProcessEnv = {}, args: readonly string[] = []) {
    return group.spawn(process.execPath, [WARREN_BIN, 'agent', '--data-dir', dataDir, ...args], {
      ipc: true, env: { ...process.env, WARREN_LOG_FORMAT: 'json', WARREN_LOG_LEVEL: 'info', ...env },
    });
  }

  it('a removed agent started with a new join token joins again in its old data dir; with its old token it says to get a new one', { timeout: 90_000 }, async () => {
    const first = await joinToken(hub);
    const agent = await startAgent({ group, hub, name: 'gone', token: first });
    const removed = waitForExit(agent.child, 30_000);
    assert.equal((await cli(hub, ['agents', 'rm', 'gone'])).code, 0);
    assert.notEqual((await removed).code, 0);

    // The token it joined with (still valid, several uses) does not bring it back: removal stands.
    const old = await waitForExit(spawnAgent(agent.dataDir, { WARREN_JOIN_TOKEN: first }), 30_000);
    assert.equal(old.code, 1, old.stderr);
    assert.match(old.stderr, /^warren: agent "gone" was removed (from the hub|or its certificate replaced): to join again, start it with a new join token \(`warren join-token create`, then --token-file FILE or WARREN_JOIN_TOKEN\), which replaces the identity in data dir \S+ \[WARREN_E_AGENT_REVOKED\]$/m);

    const fresh = await joinToken(hub);
    const back = spawnAgent(agent.dataDir, { WARREN_JOIN_TOKEN: fresh });
    await waitForReady(back, 30_000);
    const row = (await cliJson<AgentRow[]>(hub, ['agents', 'ls'])).find((a) => a.name === 'gone');
    assert.equal(row?.connected, true);
    const stored = JSON.parse(fs.readFileSync(path.join(agent.dataDir, 'identity.json'), 'utf8')) as { name: string; joinTokenId: string };
    assert.equal(stored.name, 'gone');
    assert.equal(stored.joinTokenId, parseJoinToken(fresh)?.id, 'the identity names the new token');
    await group.kill(back);
  });

  it('a data dir started without --name uses its identity without a warning about another name', { timeout: 60_000 }, async () => {
    const agent = await startAgent({ group, hub, name: 'quiet-node' });
    await stopProcess(agent.child);
    const again = spawnAgent(agent.dataDir);
    await waitForReady(again, 30_000);
    await stopProcess(again);
    const out = await waitForExit(again, 15_000);
    assert.match(out.stdout, /"msg":"joined https:\/\/\S+ as quiet-node;/);
    assert.doesNotMatch(out.stdout + out.stderr, /another agent name/);
  });
});

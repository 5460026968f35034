// Start-up mistakes a new user makes, each answered with a clear message and exit 1, never
// "internal error": a second hub on a data dir in use, a --listen port that is taken.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, run } from '../support/proc.js';
import { startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

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
});

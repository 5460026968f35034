// Acceptance: several hubs on one PostgreSQL (`--store postgres://…`), end to end with real processes.
//
//   - three hubs share one database and one CA: what one hub creates (tokens, grants, agents) the others use
//   - a one-use join token raced on all three hubs at once admits exactly one agent
//   - `warren agents rm` on hub 1 drops the agent's tunnel on hub 2 within 1 s; `warren tokens rm` on hub 1
//     cuts a stream open through hub 3 within 1 s (LISTEN/NOTIFY)
//   - a PostgreSQL restart under traffic: the open stream keeps flowing, new streams resume within 5 s,
//     no hub exits, and every stream the test made has its audit row
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { connectThroughHub } from '../support/connectClient.js';
import { startPostgres, type Postgres } from '../support/postgres.js';
import { ChildGroup, waitForExit, withDeadline } from '../support/proc.js';
import { startUpstream, type Upstream } from '../support/upstreams.js';
import { cli, cliJson, joinToken, startAgent, startHub, tempDir, type HubProc } from '../support/warren.js';

/** Resolves with the moment the far end cut the socket, which must be a reset, never a clean EOF. */
function closedAt(socket: tls.TLSSocket, ms: number, what: string): Promise<number> {
  return withDeadline(new Promise<number>((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(performance.now()) : reject(err)));
    socket.once('end', () => reject(new Error(`${what}: a clean EOF instead of a reset`)));
  }), ms, what);
}

/** One line echoed through an open stream: proves it carries data now. */
async function echoes(socket: tls.TLSSocket, text = 'x'): Promise<void> {
  const got = new Promise<Buffer>((resolve) => socket.once('data', resolve));
  socket.resume();
  socket.write(text);
  assert.equal((await withDeadline(got, 5_000, 'the echo')).toString(), text);
  socket.pause();
}

describe('several hubs on one PostgreSQL', () => {
  const procs = new ChildGroup();
  let pg: Postgres;
  let echo: Upstream;
  const hubs: HubProc[] = [];
  /** Streams opened through a hub by this test; each must have its audit row. */
  let streams = 0;

  async function stream(hub: HubProc, agent: string, token?: string): Promise<tls.TLSSocket> {
    const s = await connectThroughHub(hub, `${agent}:${echo.port}`, { token });
    streams++;
    return s;
  }

  before(async () => {
    pg = await startPostgres({ group: procs });
    echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
    const role = pg.roles[0]!;
    // The password from the environment, not the command line (which `ps` shows).
    const store = { args: ['--store', `postgres://${role.name}@${pg.host}:${pg.port}/${role.name}`], env: { PGPASSWORD: role.password } };
    hubs.push(await startHub({ group: procs, ...store }));
    // The others share the first one's CA and token-signing key (in a deployment: one Secret).
    for (let i = 0; i < 2; i++) {
      const dataDir = tempDir('hub');
      // (not its hub.lock: that file says which hub process uses that directory)
      fs.cpSync(hubs[0]!.dataDir, dataDir, { recursive: true, filter: (src) => path.basename(src) !== 'hub.lock' });
      hubs.push(await startHub({ group: procs, dataDir, ...store }));
    }
  });

  after(async () => {
    await procs.killAll();
    await pg.stop();
    procs.dispose();
  });

  it('the database password is not on any hub command line', () => {
    const pw = pg.roles[0]!.password;
    for (const hub of hubs) assert.ok(!hub.child.spawnargs.join(' ').includes(pw));
  });

  it('a one-use join token raced on all three hubs admits exactly one agent', async () => {
    const token = await joinToken(hubs[0]!);
    const results = await Promise.allSettled(hubs.map((hub, i) => startAgent({ group: procs, hub, name: `race${i}`, token, args: ['--hub', hub.url] })));
    const joined = results.filter((r) => r.status === 'fulfilled');
    assert.equal(joined.length, 1, `agents admitted: ${joined.length}`);
    const agents = await cliJson<Array<{ name: string }>>(hubs[2]!, ['agents', 'ls']);
    assert.deepEqual(agents.filter((a) => a.name.startsWith('race')).length, 1);
  });

  it('an agent on hub 2 removed on hub 1: its tunnel on hub 2 drops within 1 s', async () => {
    const agent = await startAgent({ group: procs, hub: hubs[1]!, name: 'gone', args: ['--hub', hubs[1]!.url] });
    const s = await stream(hubs[1]!, 'gone');
    await echoes(s);
    const cut = closedAt(s, 5_000, 'the stream through hub 2 after agents rm on hub 1');
    const r = await cli(hubs[0]!, ['agents', 'rm', 'gone']);
    assert.equal(r.code, 0, r.stderr);
    const returned = performance.now();
    const at = await cut;
    assert.ok(at - returned < 1_000, `cut ${(at - returned).toFixed(0)} ms after the command returned`);
    // The agent is told why and stops retrying.
    await waitForExit(agent.child, 5_000);
  });

  it('a token revoked on hub 1 cuts its stream through hub 3 within 1 s; hubs 2 and 3 refuse it at once', async () => {
    await startAgent({ group: procs, hub: hubs[2]!, name: 'node3', args: ['--hub', hubs[2]!.url] });
    const ana = await cliJson<{ token: string; id: string }>(hubs[0]!, ['token', 'create', '--user', 'ana']);
    await cliJson(hubs[1]!, ['grant', '--user', 'ana', '--agent', 'node3', '--ports', String(echo.port)]);
    const s = await stream(hubs[2]!, 'node3', ana.token);
    await echoes(s);
    const cut = closedAt(s, 5_000, 'the stream through hub 3 after tokens rm on hub 1');
    const r = await cli(hubs[0]!, ['tokens', 'rm', ana.id]);
    assert.equal(r.code, 0, r.stderr);
    const returned = performance.now();
    const at = await cut;
    assert.ok(at - returned < 1_000, `cut ${(at - returned).toFixed(0)} ms after the command returned`);
    await assert.rejects(connectThroughHub(hubs[1]!, `node3:${echo.port}`, { token: ana.token }), /407|401/);
  });

  it('a PostgreSQL restart under traffic: open streams keep flowing, new ones resume within 5 s, no hub exits, no audit row lost', async () => {
    const open = await stream(hubs[2]!, 'node3');
    await echoes(open);
    let restarted = false;
    let afterRestart = 0;
    const traffic = (async () => {
      // New streams all along: through the restart some may fail; after it they must succeed.
      while (!restarted || afterRestart < 5) {
        try {
          const s = await stream(hubs[2]!, 'node3');
          await echoes(s);
          s.destroy();
          if (restarted) afterRestart++;
        } catch {
          if (restarted) await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    await pg.restart();
    const up = performance.now();
    restarted = true;
    await echoes(open, 'still');
    await withDeadline(traffic, 5_000, 'new streams after the database restart');
    assert.ok(performance.now() - up < 5_000);
    for (const hub of hubs) assert.equal(hub.child.exitCode, null, 'no hub exited');
    open.destroy();
    // Every stream this test made has its row, whichever hub carried it and whenever the database was down.
    await withDeadline((async () => {
      for (;;) {
        const n = Number(await pg.psql("SELECT count(*) FROM audit WHERE kind = 'stream' AND door = 'connect'", 'warren'));
        if (n >= streams) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    })(), 10_000, `${streams} stream audit rows`);
    assert.ok(fs.existsSync(path.join(hubs[0]!.dataDir, 'ca.crt')));
  });
});

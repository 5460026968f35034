// An agent stopped with a drain (what SIGTERM runs): the hub is told (GOAWAY) and sends it no new
// stream, the streams already open go on until they end, and the agent stops as soon as the last one
// has; what is still open when the drain time is up is reset, never ended as if it were complete.
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import { test } from 'node:test';
import { connectThroughHub, readAll } from '../../test/support/connectClient.js';
import { echoServer, inProcessHub, type InProcessHub } from '../../test/support/inProcess.js';
import { eventually, withDeadline } from '../../test/support/proc.js';

async function echoes(socket: tls.TLSSocket, line: string): Promise<void> {
  let got = '';
  const back = new Promise<void>((resolve) => {
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.length < line.length) return;
      socket.off('data', onData);
      socket.pause();
      resolve();
    };
    socket.on('data', onData);
  });
  socket.write(line);
  socket.resume();
  await withDeadline(back, 5_000, `the echo of ${JSON.stringify(line)}`);
  assert.equal(got, line);
}

async function openStream(lab: InProcessHub, agent: string, port: number): Promise<tls.TLSSocket> {
  const socket = await connectThroughHub({ url: lab.hub.url, caPath: lab.hub.caPath, adminToken: lab.adminToken }, `${agent}:${port}`);
  await echoes(socket, 'before the stop\n');
  return socket;
}

/** Resolves once the hub has the agent's GOAWAY: its tunnel takes no new stream. */
const hubToldOf = (lab: InProcessHub, agent: string) =>
  eventually('the hub taking the agent as going', 5_000, () => Promise.resolve(lab.hub.tunnels.get(agent)?.usable === false || undefined), 10);

test('a draining agent carries its open stream on until it ends, then stops at once', async () => {
  const lab = await inProcessHub();
  const port = await echoServer();
  const agent = await lab.agent('drainer');
  const socket = await openStream(lab, 'drainer', port);
  const stopped = agent.stop({ drainMs: 60_000 });
  await hubToldOf(lab, 'drainer');
  await echoes(socket, 'during the drain\n');
  const rest = readAll(socket);
  socket.end();
  const got = await withDeadline(rest, 5_000, 'the stream ending');
  assert.equal(got.clean, true, String(got.error));
  // Long before the drain time (60 s): the agent stopped when its last stream ended.
  await withDeadline(stopped, 5_000, 'the agent stopping after its last stream ended');
});

test('a stream still open when the drain time is up is reset', async () => {
  const lab = await inProcessHub();
  const port = await echoServer();
  const agent = await lab.agent('slow');
  const socket = await openStream(lab, 'slow', port);
  const rest = readAll(socket);
  await withDeadline(agent.stop({ drainMs: 300 }), 5_000, 'the agent stopping at the end of its drain');
  const got = await withDeadline(rest, 5_000, 'the client seeing its stream end');
  assert.equal(got.clean, false, 'the stream cut by the end of the drain ended like a complete one');
});

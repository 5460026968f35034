// The web shell when the stream under a session is cut (in process, with a real sshd): the browser
// gets an error naming the cut, never "Session ended", which would make output cut short look complete.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { inProcessHub } from '../../../test/support/inProcess.js';
import { ChildGroup, withDeadline } from '../../../test/support/proc.js';
import { startSshd } from '../../../test/support/sshd.js';
import { abortSession } from '../../tunnel/relay.js';
import { SESSION_COOKIE } from './sessions.js';

test('a session whose tunnel is lost mid-output ends with WARREN_E_TUNNEL_LOST, not "Session ended"', async () => {
  const group = new ChildGroup();
  after(async () => (await group.killAll(), group.dispose()));
  const lab = await inProcessHub();
  await lab.agent('node1');
  const sshd = await startSshd({ group });
  after(() => sshd.stop());

  const signIn = await lab.request('POST', '/ui/session', { body: { token: lab.adminToken } });
  assert.equal(signIn.status, 200, JSON.stringify(signIn.body));
  const cookie = String(signIn.headers['set-cookie']?.[0]).split(';')[0]!;
  assert.ok(cookie.startsWith(`${SESSION_COOKIE}=`));
  const ws = new WebSocket(`${lab.hub.url.replace(/^https/, 'wss')}/ui/shell`, { ca: fs.readFileSync(lab.hub.caPath), headers: { cookie, origin: lab.hub.url } });
  const messages: Array<{ type: string; code?: string; message?: string }> = [];
  let output = '';
  const closed = new Promise<number>((resolve) => ws.once('close', resolve));
  const started = new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        output += data.toString('latin1');
        if (/[\r\n]START\r\n/.test(output)) resolve();
        return;
      }
      const msg = JSON.parse(data.toString('utf8')) as { type: string; code?: string; message?: string };
      messages.push(msg);
      if (msg.type === 'ready') ws.send(Buffer.from('echo S""TART; sleep 60\r'), { binary: true });
      if (msg.type !== 'ready') reject(new Error(`before the output: ${JSON.stringify(msg)}`));
    });
  });
  await withDeadline(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), 10_000, 'the WebSocket');
  ws.send(JSON.stringify({
    type: 'start', csrf: signIn.body.csrf, target: `node1:${sshd.port}`, login: 'root', privateKey: fs.readFileSync(sshd.clientKeyPath, 'utf8'), cols: 80, rows: 24,
  }));
  await withDeadline(started, 20_000, 'the shell printing START');

  // The agent's tunnel goes abruptly (as when the agent is killed or its network drops).
  abortSession(lab.hub.tunnels.get('node1')!.session, new Error('test: tunnel lost'));
  assert.equal(await withDeadline(closed, 10_000, 'the hub closing the WebSocket'), 1000);
  const last = messages.at(-1);
  assert.equal(last?.type, 'error', `last message: ${JSON.stringify(last)}`);
  assert.equal(last.code, 'WARREN_E_TUNNEL_LOST');
  assert.match(last.message ?? '', /^the stream to node1:\d+ through agent node1 was cut \(aborted: .*\) before the shell exited$/);
});

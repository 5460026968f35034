// Chaos: mixed traffic through the doors (HTTP CONNECT, SOCKS5, a hub forward, an egress rule whose entry
// is on an agent, the kube router, the web shell) while agents and the hub are killed (SIGKILL) and
// restarted (SIGTERM: they drain) at seeded random times. Every stream either completes with the sha256 of what the upstream sent, or fails with an error its client sees; a
// stream that ends cleanly with missing or wrong bytes, or hangs, fails the test. Beside it: stream churn
// leaves the hub's open file descriptors and RSS (each after a full GC) within 10 % of where they started; a reader
// limited to 1 MB/s beside a fast stream keeps the hub's memory within the flow-control windows and the
// fast stream fast; agents reconnecting after a hub restart all come back, spread by their backoff jitter.
//
//   npm run test:chaos                       # the bounded run (also part of `npm test`)
//   CHAOS_SCALE=10 npm run test:chaos        # a soak: 100× the duration and churn, 10× the agents
//   CHAOS_SEED=123456 npm run test:chaos     # replays a run's schedule of faults and doors
//
// Figures are printed as `chaos: …` lines (docs/reliability.md); timings are reported, and asserted
// only against generous bounds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { startAgent as startInProcessAgent, type Agent } from '../../src/agent/agent.js';
import { agentConfig } from '../../src/agent/config.js';
import { silentLogger } from '../../src/shared/log.js';
import { encodeGreeting, encodeRequest, encodeUserPass, parseMethodSelection, parseReply, parseUserPassStatus } from '../../src/doors/socks5Codec.js';
import { STREAM_WINDOW } from '../../src/tunnel/protocol.js';
import { rssBytes, rssParts } from '../../bench/lib/procstat.js';
import { startFakeApiserver } from '../support/kube/apiserver.js';
import { ChildGroup, eventually, outputTail, runOk, waitForLine, withDeadline } from '../support/proc.js';
import { natLab } from '../support/netns.js';
import { startSshd } from '../support/sshd.js';
import { connectThroughHub, errorAfterEof, readAll, type ReadResult } from '../support/connectClient.js';
import { seededBytes, seededSha256, sha256Hex, startUpstream } from '../support/upstreams.js';
import { accessToken, cli, cliJson, joinToken, startAgent, startHub, stopProcess, tempDir, type AgentProc, type HubProc } from '../support/warren.js';

const SCALE = Math.max(0.1, Number(process.env.CHAOS_SCALE ?? 1) || 1);
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`chaos: seed ${SEED} (replay with CHAOS_SEED=${SEED}), scale ${SCALE}`);

const MiB = 1024 * 1024;
/** A stream that has neither ended nor failed this long after it opened hangs (the longest take seconds). */
const STALL_MS = 120_000;
const PING = ['--ping-interval', '1s'];
/** Agents drain for 3 s on SIGTERM (a stream here takes well under a second). */
const AGENT = [...PING, '--drain-timeout', '3s'];

/** mulberry32: a small seeded PRNG, so a run's schedule can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/**
 * A SOCKS5 stream: greeting, credentials (the token as password) and request pipelined, then the
 * payload. Resolves once the reply is in (the socket paused, payload bytes put back); rejects on a
 * refusal or a close before the reply.
 */
function socksThroughHub(port: number, token: string, host: string, targetPort: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    const fail = (why: string) => (socket.destroy(), reject(new Error(why)));
    socket.once('connect', () => socket.write(Buffer.concat([encodeGreeting([0x02]), encodeUserPass('chaos', token), encodeRequest({ command: 'connect', host, port: targetPort })])));
    socket.on('error', (err) => fail(`socks5: ${err.message}`));
    socket.once('close', () => fail('socks5: closed before the reply'));
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const sel = parseMethodSelection(buf);
      if (sel.kind !== 'ok') return;
      const st = parseUserPassStatus(buf.subarray(sel.consumed));
      if (st.kind !== 'ok') return;
      if (!st.value.ok) return fail('socks5: credentials refused');
      const rep = parseReply(buf.subarray(sel.consumed + st.consumed));
      if (rep.kind === 'incomplete') return;
      if (rep.kind === 'error' || rep.value.reply !== 0) return fail(`socks5: reply ${rep.kind === 'ok' ? rep.value.reply : rep.reason}`);
      socket.off('data', onData);
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.pause();
      const rest = buf.subarray(sel.consumed + st.consumed + rep.consumed);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
  });
}

function dialForward(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    s.once('connect', () => (s.off('error', reject), s.pause(), resolve(s)));
    s.once('error', reject);
  });
}

/** The hub answered a kube request with something other than 200: a Status its client sees. */
class KubeRefused extends Error {
  constructor(
    readonly status: number,
    body: string,
  ) {
    // A Kubernetes Status names what went wrong in its message; anything else is quoted as it came.
    let message = body.slice(0, 200);
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? message;
    } catch {
      // not a Status: the body as it came
    }
    super(message);
  }
}

/**
 * A GET through the hub's kube router. Resolves with the response once its status is 200 (paused, body
 * unread); rejects with KubeRefused (body read) for any other status, or with the request's error.
 */
function kubeGet(hub: HubProc, ca: string, urlPath: string, token: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${hub.url}${urlPath}`, { headers: { Authorization: `Bearer ${token}` }, ca, agent: false }, (res) => {
      if (res.statusCode === 200) return resolve(res.pause());
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () => reject(new KubeRefused(res.statusCode ?? 0, body)));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
}

type Door = 'connect' | 'socks5' | 'forward' | 'egress' | 'kube' | 'shell';
const DOORS: readonly Door[] = ['connect', 'socks5', 'forward', 'egress', 'kube', 'shell'];

/** How a web shell session ended, and what its terminal showed. */
interface ShellOutcome {
  /** The hub's `end` message (a clean end: the shell exited), if it sent one. */
  readonly ended?: string;
  /** The hub's `error` message, or the WebSocket's own failure. */
  readonly error?: string;
  readonly output: Buffer;
}

/**
 * Opens a web shell session as the browser does: sign in with `token` (POST /ui/session: the cookie and
 * the CSRF token), then the WebSocket with the hub's own Origin. Rejects when either is refused.
 */
async function openShell(hub: HubProc, ca: string, token: string): Promise<{ ws: WebSocket; csrf: string }> {
  const signIn = await new Promise<{ cookie: string; csrf: string }>((resolve, reject) => {
    const req = https.request(`${hub.url}/ui/session`, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', origin: hub.url } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () => {
        const cookie = (res.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
        if (res.statusCode !== 200 || !cookie) return reject(new Error(`sign-in: ${res.statusCode} ${body.slice(0, 200)}`));
        resolve({ cookie, csrf: (JSON.parse(body) as { csrf: string }).csrf });
      });
    });
    req.once('error', reject);
    req.end(JSON.stringify({ token }));
  });
  const ws = new WebSocket(`${hub.url.replace(/^https/, 'wss')}/ui/shell`, { ca, headers: { cookie: signIn.cookie, origin: hub.url } });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  return { ws, csrf: signIn.csrf };
}

/**
 * Starts an SSH login with a private key on an open session, types `command` once the shell is ready,
 * and collects what the terminal shows until the hub closes the WebSocket.
 */
function runShell(ws: WebSocket, csrf: string, start: object, command: string): Promise<ShellOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended: string | undefined;
    let error: string | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return void chunks.push(data);
      const msg = JSON.parse(data.toString('utf8')) as { type: string; reason?: string; code?: string; message?: string };
      if (msg.type === 'ready') ws.send(Buffer.from(command), { binary: true });
      else if (msg.type === 'end') ended = msg.reason ?? '';
      else if (msg.type === 'error') error = `${msg.code}: ${msg.message}`;
    });
    ws.on('error', (err) => (error ??= err.message));
    ws.once('close', (code) => {
      // 1006: the connection went without a closing handshake (the hub process died), which a browser reports as an error.
      if (code !== 1000 && ended === undefined) error ??= `WebSocket closed with code ${code}`;
      resolve({ ...(ended !== undefined ? { ended } : {}), ...(error !== undefined ? { error } : {}), output: Buffer.concat(chunks) });
    });
    ws.send(JSON.stringify({ ...start, type: 'start', csrf, cols: 200, rows: 50 }));
  });
}

test('chaos: mixed traffic through every door while agents and the hub are killed and restarted', { timeout: 600_000 + 60_000 * SCALE * SCALE * 2 }, async (t) => {
  const random = rng(SEED);
  const procs = new ChildGroup();
  const dirs: string[] = [];
  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  // 30 s in the bounded run; 50 min at CHAOS_SCALE=10 (the soak).
  const durationMs = 30_000 * SCALE * SCALE;
  const streamBytes = Math.round(2 * MiB * Math.min(SCALE, 8));
  const source = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes: streamBytes, seed: 'chaos' });
  const expected = seededSha256('chaos', streamBytes);
  const hubArgs = (socks: string) => [...PING, '--drain-timeout', '1s', '--socks-listen', socks];
  let hub = await startHub({ group: procs, args: hubArgs('127.0.0.1:0') });
  dirs.push(hub.dataDir);
  const socksPort = hub.socksPort!;
  // Three agents serve the same route: a new stream fails over to a live one while another is down.
  const agents = new Map<string, AgentProc>();
  for (const name of ['chaos-a', 'chaos-b', 'chaos-c']) {
    const a = await startAgent({ group: procs, hub, name, args: [...AGENT, '--route', '127.0.0.0/8'] });
    agents.set(name, a);
    dirs.push(a.dataDir);
  }
  const target = `127.0.0.1:${source.port}`;
  const fwd = await cliJson<{ address: string }>(hub, ['forwards', 'create', 'chaos-fwd', '--entry', 'hub:127.0.0.1:0', '--target', target]);
  const fwdPort = Number(fwd.address.split(':').pop());
  // An egress rule: clients connect to an entry on agent chaos-a, the stream goes up its uplink to the hub
  // and out through gateway chaos-gw from its source address.
  const gw = await startAgent({ group: procs, hub, name: 'chaos-gw', args: [...AGENT, '--source-ip', '127.0.0.1', '--allow', '127.0.0.1'] });
  agents.set('chaos-gw', gw);
  dirs.push(gw.dataDir);
  const eg = await cliJson<{ address: string }>(hub, ['egress', 'create', 'chaos-eg', '--gateway', 'chaos-gw', '--target', target, '--source-ip', '127.0.0.1', '--entry', 'chaos-a:127.0.0.1:0']);
  const egressPort = Number(eg.address.split(':').pop());

  // The kube door: two agents serve cluster `chaos` in front of the kube-apiserver stand-in; a kube
  // stream is a pod's log (a chunked GET) as long as the other doors' streams, lines of seeded hex.
  const api = await startFakeApiserver({ extraRules: [{ users: ['dev'], verbs: ['get'], apiGroups: [''], resources: ['pods/log'], namespaces: ['team-a'] }] });
  after(() => api.close());
  api.createPod('team-a', 'chaos');
  const hex = seededBytes('chaos-kube', streamBytes / 2).toString('hex');
  const lines = Array.from({ length: Math.ceil(hex.length / 1023) }, (_, i) => hex.slice(i * 1023, (i + 1) * 1023));
  for (const line of lines) api.appendLog('team-a', 'chaos', line);
  const kubeBody = lines.map((l) => `${l}\n`).join('');
  const kubeBytes = Buffer.byteLength(kubeBody);
  const kubeExpected = sha256Hex(kubeBody);
  const kubeDir = tempDir('chaos-kube');
  dirs.push(kubeDir);
  const agentKubeconfig = path.join(kubeDir, 'agent.kubeconfig');
  fs.writeFileSync(agentKubeconfig, api.kubeconfig('agent'), { mode: 0o600 });
  for (const name of ['chaos-k1', 'chaos-k2']) {
    const a = await startAgent({ group: procs, hub, name, args: [...AGENT, '--kube', agentKubeconfig, '--cluster', 'chaos'] });
    agents.set(name, a);
    dirs.push(a.dataDir);
  }
  // The web shell: a terminal session to a real sshd prints a file of seeded hex lines between two
  // markers; what the terminal shows between them (its CRLF line ends undone) must be that file.
  const sshd = await startSshd({ group: procs });
  after(() => sshd.stop());
  const shellHex = seededBytes('chaos-shell', Math.round(streamBytes / 8)).toString('hex');
  const shellText = Array.from({ length: Math.ceil(shellHex.length / 1023) }, (_, i) => `${shellHex.slice(i * 1023, (i + 1) * 1023)}\n`).join('');
  const shellFile = path.join(kubeDir, 'shell.txt');
  fs.writeFileSync(shellFile, shellText);
  const shellStart = { target: `127.0.0.1:${sshd.port}`, login: 'root', privateKey: fs.readFileSync(sshd.clientKeyPath, 'utf8') };
  // The markers are typed with quotes inside, so the terminal's echo of the command line does not match them.
  const shellCommand = `echo S""TART; cat ${shellFile}; echo E""ND; exit\r`;

  const grant = await cli(hub, ['grant', '--user', 'dev', '--cluster', 'chaos']);
  assert.equal(grant.code, 0, grant.stderr);
  const devToken = await accessToken(hub, 'dev');
  const hubCa = fs.readFileSync(hub.caPath, 'utf8');
  /** Kube refusals by status and the Status message, e.g. `503 cluster chaos has no connected agent`. */
  const kubeRefusals: Record<string, number> = {};

  const stats = { streams: 0, ok: 0, failedVisibly: 0, resetReadAsEof: 0, openFailed: 0, silent: [] as string[], hung: [] as string[], bytesLost: 0, cutByKill: 0, bytes: 0, agentKills: 0, agentRestarts: 0, hubKills: 0, hubRestarts: 0, openMs: [] as number[] };
  const byDoor = Object.fromEntries(DOORS.map((d) => [d, { ok: 0, failed: 0 }])) as Record<Door, { ok: number; failed: number }>;
  let hubDown = false;
  /**
   * Bumped when the hub process is SIGKILLed: the kernel then closes its sockets with a FIN, and no
   * process is left to send an RST or (on the CONNECT door) a TLS close_notify.
   */
  let hubKillEpoch = 0;
  /** The same for the agent that holds the egress rule's entry: its clients get the kernel's FIN. */
  let entryKillEpoch = 0;

  async function open(door: Door): Promise<net.Socket | http.IncomingMessage> {
    if (door === 'connect') return connectThroughHub(hub, target, { timeoutMs: 10_000 });
    if (door === 'socks5') return socksThroughHub(socksPort, hub.adminToken, '127.0.0.1', source.port);
    if (door === 'kube') {
      return kubeGet(hub, hubCa, '/k8s/clusters/chaos/api/v1/namespaces/team-a/pods/chaos/log', devToken).catch((err: unknown) => {
        if (err instanceof KubeRefused) {
          const why = `${err.status} ${err.message}`;
          kubeRefusals[why] = (kubeRefusals[why] ?? 0) + 1;
        }
        throw err;
      });
    }
    return dialForward(door === 'egress' ? egressPort : fwdPort);
  }

  /** The hub's last warnings and errors, for the report of a stream that hangs. */
  const hubWarnings = () => outputTail(hub.child, 8, /"level":(40|50|60)/).join(' | ');

  /** What the entry agent and the hub logged about an egress client's connection (they name it by its address). */
  const egressWay = (door: Door, socket: net.Socket | http.IncomingMessage): string => {
    const port = socket instanceof net.Socket ? socket.localPort : undefined;
    if (door !== 'egress' || port === undefined) return '';
    const about = new RegExp(`127\\.0\\.0\\.1:${port}\\b`);
    return `; entry agent: ${outputTail(agents.get('chaos-a')!.child, 8, about).join(' | ')}; hub: ${outputTail(hub.child, 8, about).join(' | ')}`;
  };

  /** One web shell session; its outcome is counted like a stream's. */
  async function shell(): Promise<'ok' | 'failed'> {
    stats.streams++;
    const started = performance.now();
    let session: { ws: WebSocket; csrf: string };
    try {
      session = await withDeadline(openShell(hub, hubCa, hub.adminToken), 15_000, 'opening a web shell session');
    } catch {
      stats.openFailed++;
      byDoor.shell.failed++;
      return 'failed';
    }
    if (!hubDown) stats.openMs.push(performance.now() - started);
    let outcome: ShellOutcome;
    try {
      outcome = await withDeadline(runShell(session.ws, session.csrf, shellStart, shellCommand), STALL_MS, 'a web shell session to end');
    } catch {
      session.ws.terminate();
      stats.hung.push(`shell: no end and no error ${STALL_MS / 1000} s after the session opened; hub: ${hubWarnings()}`);
      byDoor.shell.failed++;
      return 'failed';
    }
    const shown = /[\r\n]START\r\n([\s\S]*?)END\r\n/.exec(outcome.output.toString('latin1'))?.[1]?.replace(/\r\n/g, '\n');
    const text = shown ?? '';
    if (outcome.error === undefined && text === shellText) {
      stats.ok++;
      stats.bytes += text.length;
      byDoor.shell.ok++;
      return 'ok';
    }
    if (outcome.error !== undefined) stats.failedVisibly++;
    else {
      // The hub said the session ended (no error) but the terminal did not show the whole file.
      stats.bytesLost += Math.max(shellText.length - text.length, 0) || shellText.length;
      stats.silent.push(`shell: ended "${outcome.ended ?? ''}" after ${text.length} of ${shellText.length} bytes between the markers`);
    }
    byDoor.shell.failed++;
    return 'failed';
  }

  /** One stream through `door`; its outcome is counted. */
  async function stream(door: Door): Promise<'ok' | 'failed'> {
    if (door === 'shell') return shell();
    stats.streams++;
    const started = performance.now();
    const epoch = hubKillEpoch;
    const entryEpoch = entryKillEpoch;
    let socket: net.Socket | http.IncomingMessage;
    try {
      socket = await withDeadline(open(door), 15_000, `opening a ${door} stream`);
    } catch {
      stats.openFailed++;
      byDoor[door].failed++;
      return 'failed';
    }
    if (!hubDown) stats.openMs.push(performance.now() - started);
    let seen = 0;
    let got: ReadResult;
    try {
      got = await withDeadline(readAll(socket, (_c, total) => void (seen = total)), STALL_MS, `a ${door} stream to end`);
    } catch {
      // Neither an end nor an error: a stream that hangs is a failure of its own, reported with what the
      // processes on its path logged last (warnings and errors), and the run goes on.
      const way = egressWay(door, socket);
      socket.destroy();
      stats.hung.push(`${door}: no end and no error ${STALL_MS / 1000} s after ${seen} of ${door === 'kube' ? kubeBytes : streamBytes} bytes; hub: ${hubWarnings()}${way}`);
      byDoor[door].failed++;
      return 'failed';
    }
    const [wantBytes, wantSha256] = door === 'kube' ? [kubeBytes, kubeExpected] : [streamBytes, expected];
    if (got.clean && got.bytes === wantBytes && got.sha256 === wantSha256) {
      socket.destroy();
      stats.ok++;
      stats.bytes += got.bytes;
      byDoor[door].ok++;
      return 'ok';
    }
    // A short stream that ended "cleanly": the socket says whether that EOF was the hub's RST (which
    // Node's socket layer can report as an end, see errorAfterEof) or a FIN. A kube response has HTTP
    // framing (chunked): a cut one is an error to its client however the connection ended.
    const reset = got.clean && socket instanceof net.Socket ? await withDeadline(errorAfterEof(socket), 10_000, 'the socket error after a short EOF') : undefined;
    const way = egressWay(door, socket);
    socket.destroy();
    if (reset) {
      stats.resetReadAsEof++;
      stats.failedVisibly++;
    } else if (got.clean && door !== 'kube' && (hubKillEpoch !== epoch || (door === 'egress' && entryKillEpoch !== entryEpoch))) {
      // The client of a hub process that was SIGKILLed gets the kernel's FIN: no process is left to say
      // otherwise. A plain TCP client (SOCKS5, a forward) cannot tell; on the CONNECT door the TLS
      // close_notify is missing, which OpenSSL-based clients (curl) report as an unexpected EOF and
      // Node's TLS client does not. The same holds for the agent that holds the egress entry. Counted
      // apart; a graceful restart and the kill of any other process are not excused.
      stats.cutByKill++;
    } else if (got.clean) {
      // The one outcome that must never happen: a stream that ends with a FIN but is short or wrong.
      stats.bytesLost += got.bytes < wantBytes ? wantBytes - got.bytes : wantBytes; // short, or as long but wrong
      stats.silent.push(`${door}: clean EOF after ${got.bytes} of ${wantBytes} bytes, sha256 ${got.sha256 === wantSha256 ? 'matches' : 'differs'}${way}`);
    } else stats.failedVisibly++;
    byDoor[door].failed++;
    return 'failed';
  }

  const deadline = performance.now() + durationMs;
  const workers = Array.from({ length: 6 }, async (_, w) => {
    const r = rng(SEED + w + 1);
    while (performance.now() < deadline) {
      // Pacing after a refusal (the hub may be down): a client retrying, not a wait for an event.
      if ((await stream(DOORS[Math.floor(r() * DOORS.length)]!)) === 'failed') await delay(100 + r() * 400);
    }
  });

  const faults = (async () => {
    while (performance.now() < deadline - 5_000) {
      await delay(2_000 + random() * 4_000);
      if (performance.now() >= deadline - 5_000) break;
      if (random() < 0.3) {
        // The hub: SIGKILL or a graceful restart (SIGTERM, 1 s drain), then the same port, data dir and SOCKS5 port.
        hubDown = true;
        const kill = random() < 0.5;
        if (kill) {
          stats.hubKills++;
          hubKillEpoch++;
        } else stats.hubRestarts++;
        await stopProcess(hub.child, kill ? 'SIGKILL' : 'SIGTERM');
        hub = await startHub({ ...hub.options, listen: `127.0.0.1:${hub.port}`, args: hubArgs(`127.0.0.1:${socksPort}`) });
        hubDown = false;
      } else {
        const names = [...agents.keys()];
        const name = names[Math.floor(random() * names.length)]!;
        const a = agents.get(name)!;
        // SIGKILL, or a graceful restart (SIGTERM: the agent drains, its open streams finish).
        if (random() < 0.5) {
          stats.agentKills++;
          if (name === 'chaos-a') entryKillEpoch++;
          await stopProcess(a.child, 'SIGKILL');
        } else {
          stats.agentRestarts++;
          await stopProcess(a.child, 'SIGTERM');
        }
        agents.set(name, await startAgent({ ...a.options, hub }));
      }
    }
  })();
  await Promise.all([...workers, faults]);

  // After the faults every door works again.
  for (const door of DOORS) {
    let outcome: 'ok' | 'failed' = 'failed';
    for (let i = 0; i < 20 && outcome === 'failed'; i++) {
      outcome = await stream(door);
      if (outcome === 'failed') await delay(500);
    }
    const exited = [...agents].filter(([, a]) => a.child.exitCode !== null || a.child.signalCode !== null).map(([n, a]) => `${n} (${a.child.exitCode ?? a.child.signalCode})`);
    assert.equal(outcome, 'ok', `the ${door} door did not recover after the faults${exited.length ? `; agent processes that exited: ${exited.join(', ')}` : ''}`);
  }

  const line = `chaos: ${stats.streams} streams (${stats.ok} complete with matching sha256, ${stats.failedVisibly} failed with an error the client saw (${stats.resetReadAsEof} of them an RST first read as EOF), ${stats.openFailed} refused at open, ${stats.silent.length} silently short, ${stats.hung.length} hung, ${stats.cutByKill} cut by a SIGKILL of the hub or of the egress entry's agent) ` +
    `${mb(stats.bytes)} verified, ${stats.bytesLost} bytes lost without an error; faults: ${stats.agentKills} agent kills, ${stats.agentRestarts} agent restarts, ${stats.hubKills} hub kills, ${stats.hubRestarts} hub restarts in ${Math.round(durationMs / 1000)} s; ` +
    `open latency p50 ${percentile(stats.openMs, 50).toFixed(0)} ms p99 ${percentile(stats.openMs, 99).toFixed(0)} ms; by door ${JSON.stringify(byDoor)}; kube refusals ${JSON.stringify(kubeRefusals)}`;
  console.log(line);
  t.diagnostic(line);
  // One assertion, so that a run that found both reports both.
  assert.deepEqual({ silentlyShort: stats.silent, hung: stats.hung }, { silentlyShort: [], hung: [] }, 'streams that ended with a FIN (no reset) with missing or wrong bytes, or neither ended nor failed');
  for (const door of DOORS) assert.ok(byDoor[door].ok > 0, `no ${door} stream completed`);
  assert.ok(stats.agentKills + stats.agentRestarts + stats.hubKills + stats.hubRestarts > 0, 'no fault was injected');
});

/** A hub with one agent and an echo upstream, for the measurements below. */
async function quietLab(name: string, hubEnv: NodeJS.ProcessEnv = {}): Promise<{ hub: HubProc; procs: ChildGroup; echoPort: number }> {
  const procs = new ChildGroup();
  const hub = await startHub({ group: procs, args: [...PING, '--drain-timeout', '1s'], env: hubEnv });
  const agent = await startAgent({ group: procs, hub, name, args: PING });
  const echo = await startUpstream('echo', { group: procs, listen: '127.0.0.1:0' });
  after(async () => {
    await procs.killAll();
    procs.dispose();
    for (const d of [hub.dataDir, agent.dataDir]) fs.rmSync(d, { recursive: true, force: true });
  });
  return { hub, procs, echoPort: echo.port };
}

/**
 * A connection to a process's own inspector (Node started with `--inspect=127.0.0.1:0`), to run a full
 * garbage collection in it and read its heap: memory is compared between two collected states rather
 * than wherever V8's heap sizing happened to be. Nothing in the hub exposes this; only the test turns it on.
 */
async function inspect(child: import('node:child_process').ChildProcess): Promise<{ collect(): Promise<NodeJS.MemoryUsage>; close(): void }> {
  const url = (await waitForLine(child, /Debugger listening on (ws:\/\/\S+)/, { timeoutMs: 20_000, stream: 'stderr' }))[1]!;
  const ws = new WebSocket(url);
  await withDeadline(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), 10_000, 'the inspector connection');
  let nextId = 0;
  const call = <T>(method: string, params: object = {}) =>
    withDeadline(new Promise<T>((resolve, reject) => {
      const id = ++nextId;
      const onMessage = (data: Buffer) => {
        const msg = JSON.parse(data.toString('utf8')) as { id?: number; result?: T; error?: { message: string } };
        if (msg.id !== id) return;
        ws.off('message', onMessage);
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result!);
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id, method, params }));
    }), 30_000, `the inspector's answer to ${method}`);
  return {
    async collect() {
      await call('HeapProfiler.collectGarbage');
      const r = await call<{ result: { value: string } }>('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
      return JSON.parse(r.result.value) as NodeJS.MemoryUsage;
    },
    close: () => ws.close(),
  };
}

test('churn: many short streams leave the hub\'s open file descriptors and RSS within 10 % of where they started', { timeout: 300_000 + 3_600_000 * Math.max(0, SCALE - 1) }, async (t) => {
  const { hub, echoPort } = await quietLab('churn', { NODE_OPTIONS: '--inspect=127.0.0.1:0' });
  const pid = hub.child.pid!;
  const inspector = await inspect(hub.child);
  after(() => inspector.close());
  // 1,000 in the bounded run, 100,000 at CHAOS_SCALE=10.
  const total = Math.round(1_000 * SCALE * SCALE);
  const payload = Buffer.alloc(1024, 7);
  async function one(): Promise<void> {
    const s = await connectThroughHub(hub, `churn:${echoPort}`);
    const got = readAll(s);
    s.end(payload);
    const r = await withDeadline(got, 30_000, 'an echo stream');
    s.destroy();
    assert.ok(r.clean && r.bytes === payload.length, `echo stream: ${r.bytes} bytes, clean ${r.clean}`);
  }
  const run = async (n: number) => {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next++ < n) await one();
    }));
  };
  // Warm-up: pools, compiled code, the heap grown to its working size. Measured without it, the first
  // streams' one-time costs read as growth.
  await run(Math.min(total, 1_000));
  const settled = async () => {
    // Streams just closed may still hold their sockets for a moment: wait (bounded) until the count stops falling.
    let last = fdCount(pid);
    for (let i = 0; i < 50; i++) {
      await delay(100);
      const now = fdCount(pid);
      if (now >= last) return now;
      last = now;
    }
    return last;
  };
  const fd0 = await settled();
  const mem0 = await inspector.collect();
  const rss0 = rssBytes(pid);
  const parts0 = rssParts(pid);
  const started = performance.now();
  await run(total);
  const seconds = (performance.now() - started) / 1000;
  const fd1 = await settled();
  const mem1 = await inspector.collect();
  const rss1 = rssBytes(pid);
  const parts1 = rssParts(pid);
  const pct = (a: number, b: number) => `${(((b - a) / a) * 100).toFixed(1)} %`;
  const line = `chaos: churn ${total} streams in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s), each state after a full GC; hub fds ${fd0} → ${fd1}; ` +
    `hub RSS ${mb(rss0)} → ${mb(rss1)} (${pct(rss0, rss1)}: anonymous ${mb(parts0.anon)} → ${mb(parts1.anon)}, files ${mb(parts0.file)} → ${mb(parts1.file)}, shared ${mb(parts0.shmem)} → ${mb(parts1.shmem)}); ` +
    `V8 heap used ${mb(mem0.heapUsed)} → ${mb(mem1.heapUsed)} (${pct(mem0.heapUsed, mem1.heapUsed)}) of ${mb(mem0.heapTotal)} → ${mb(mem1.heapTotal)}; external ${mb(mem0.external)} → ${mb(mem1.external)}`;
  console.log(line);
  t.diagnostic(line);
  assert.ok(fd1 <= Math.max(fd0 * 1.1, fd0 + 3), `open fds grew from ${fd0} to ${fd1}`);
  assert.ok(rss1 <= rss0 * 1.1, `hub RSS grew from ${mb(rss0)} to ${mb(rss1)}`);
});

test('slow reader: a 1 MB/s reader beside a fast stream keeps hub memory within the windows and the fast stream fast', { timeout: 300_000 }, async (t) => {
  const { hub, procs } = await quietLab('flow');
  const bytes = 64 * MiB;
  const source = await startUpstream('source', { group: procs, listen: '127.0.0.1:0', bytes, seed: 'flow' });
  const target = `flow:${source.port}`;
  const pid = hub.child.pid!;
  /** The fast stream's speed in MiB/s, and the hub's peak RSS while it ran. */
  async function fast(): Promise<{ speed: number; peakRss: number }> {
    let peakRss = rssBytes(pid);
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid))), 100);
    try {
      const s = await connectThroughHub(hub, target);
      const got = await withDeadline(readAll(s), 180_000, 'the fast stream');
      s.destroy();
      assert.ok(got.clean && got.bytes === bytes && got.sha256 === seededSha256('flow', bytes), 'the fast stream is incomplete');
      return { speed: bytes / MiB / (got.elapsedMs / 1000), peakRss };
    } finally {
      clearInterval(sampler);
    }
  }
  const { speed: solo, peakRss: soloPeak } = await fast();
  // The baseline is the hub's peak while the same stream ran alone, not its RSS after: V8 may give back
  // the young generation the stream filled once it is idle, and the next stream takes it again (+16 MiB
  // after a solo stream on a loaded machine), which is the stream's own memory, not the slow reader's.
  const rssBefore = Math.max(soloPeak, rssBytes(pid));
  // The slow reader: 64 KiB, then a pause long enough to average 1 MB/s.
  const slow = await connectThroughHub(hub, target);
  let slowBytes = 0;
  let stopSlow = false;
  const slowDone = (async () => {
    const startedAt = performance.now();
    slow.on('data', (c: Buffer) => {
      slowBytes += c.length;
      slow.pause();
      const due = startedAt + (slowBytes / 1_000_000) * 1000;
      setTimeout(() => (stopSlow ? undefined : slow.resume()), Math.max(0, due - performance.now()));
    });
    slow.on('error', () => undefined);
    slow.resume();
  })();
  const { speed: beside, peakRss: rssMax } = await fast();
  stopSlow = true;
  slow.destroy();
  await slowDone;
  const grew = rssMax - rssBefore;
  const line = `chaos: fast stream alone ${solo.toFixed(0)} MiB/s, beside a 1 MB/s reader ${beside.toFixed(0)} MiB/s (${((beside / solo) * 100).toFixed(0)} %); slow reader got ${mb(slowBytes)}; hub RSS ${mb(rssBefore)} → max ${mb(rssMax)} (+${mb(grew)}; stream window ${mb(STREAM_WINDOW)})`;
  console.log(line);
  t.diagnostic(line);
  // A hub that buffered for the slow reader would grow by the 64 MiB it could not deliver; within the
  // flow-control windows it grows by about one stream window (measured +0.4–0.5 MiB). The bound leaves
  // room for the heap's own moves. The fast stream keeps over half its solo speed (as the issue asks).
  assert.ok(grew < 16 * STREAM_WINDOW, `hub RSS grew by ${mb(grew)} while a reader was slow (stream window ${mb(STREAM_WINDOW)})`);
  assert.ok(beside > solo / 2, `the fast stream dropped to ${beside.toFixed(0)} of ${solo.toFixed(0)} MiB/s beside a slow reader`);
});

test('reconnect after a hub restart: every agent comes back, spread by backoff jitter over its window', { timeout: 300_000 + 120_000 * SCALE }, async (t) => {
  // 50 agents in the bounded run, 500 at CHAOS_SCALE=10; in-process, so that many fit on two cores.
  const n = Math.round(50 * SCALE);
  const reconnectMaxMs = 5_000;
  const procs = new ChildGroup();
  let hub = await startHub({ group: procs, args: [...PING, '--drain-timeout', '1s'] });
  const token = await joinToken(hub, ['--name-pattern', 'jit-*', '--uses', String(n)]);
  const agents: Agent[] = [];
  const dirs = [hub.dataDir];
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await procs.killAll();
    procs.dispose();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const start = async (i: number) => {
    const dataDir = tempDir(`jit-${i}`);
    dirs.push(dataDir);
    agents.push(await startInProcessAgent(agentConfig({ name: `jit-${i}`, dataDir, token, hub: hub.url, pingInterval: '1s', reconnectMax: `${reconnectMaxMs}ms` }, {}), silentLogger));
  };
  // Ten joins at a time: the hub's handshake queue, not the test, paces the rest.
  for (let i = 0; i < n; i += 10) await Promise.all(Array.from({ length: Math.min(10, n - i) }, (_, j) => start(i + j)));
  type Row = { name: string; connected: boolean; connectedAt: string | null };
  const rows = () => cliJson<Row[]>(hub, ['agents', 'ls']);
  await eventually(`${n} agents connected`, 60_000 + 100 * n, async () => ((await rows()).filter((r) => r.connected).length === n ? true : undefined), 500);
  await stopProcess(hub.child, 'SIGKILL');
  const down = Date.now();
  await delay(2_000); // the hub stays down a while: the agents' retries back off
  const restarting = Date.now();
  hub = await startHub({ ...hub.options, listen: `127.0.0.1:${hub.port}` });
  const up = Date.now();
  const back = await eventually(`all ${n} agents back after the hub restart`, 60_000 + 100 * n, async () => {
    const r = (await rows()).filter((x) => x.connected && x.connectedAt && Date.parse(x.connectedAt) >= restarting);
    return r.length === n ? r.map((x) => Date.parse(x.connectedAt!) - up).sort((a, b) => a - b) : undefined;
  }, 500);
  const first = back[0]!;
  const spread = back[back.length - 1]! - first;
  const withinFirst100ms = back.filter((x) => x - first < 100).length;
  const perSecond: number[] = [];
  for (const x of back) perSecond[Math.max(0, Math.floor(x / 1000))] = (perSecond[Math.max(0, Math.floor(x / 1000))] ?? 0) + 1;
  const line = `chaos: ${n} agents back ${first} … ${back[back.length - 1]} ms after the hub was ready (down ${up - down} ms, reconnect cap ${reconnectMaxMs} ms); ` +
    `p50 ${percentile(back, 50)} ms, p90 ${percentile(back, 90)} ms, spread ${spread} ms, ${withinFirst100ms} within 100 ms of the first; per second after the hub was ready ${JSON.stringify(Array.from(perSecond, (c) => c ?? 0))}`;
  console.log(line);
  t.diagnostic(line);
  // Lockstep would put every reconnect within a few ms of the first. Full jitter puts each agent's retry
  // uniformly in [0, min(cap, 250 ms·2^attempt)]: after 2 s down most are waiting out a 2–5 s draw, so
  // a few per cent land in any 100 ms and the last comes seconds after the first.
  assert.ok(withinFirst100ms <= n / 4, `${withinFirst100ms} of ${n} agents reconnected within 100 ms of the first`);
  assert.ok(spread >= reconnectMaxMs / 5, `the reconnects spread over ${spread} ms only, of a ${reconnectMaxMs} ms jitter window`);
});

/** Resolves with the time (performance.now()) of the first line from now on of `child` that matches `re`. */
function nextLine(child: import('node:child_process').ChildProcess, re: RegExp, ms: number, what: string): Promise<number> {
  let onData: ((c: Buffer) => void) | undefined;
  const seen = new Promise<number>((resolve) => {
    let partial = '';
    onData = (c: Buffer) => {
      const lines = (partial + c.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      if (lines.some((l) => re.test(l))) resolve(performance.now());
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  return withDeadline(seen, ms, what).finally(() => {
    child.stdout?.off('data', onData!);
    child.stderr?.off('data', onData!);
  });
}

test('network partition: a site link set down is detected by the hub and the agent within 2 ping intervals', { timeout: 180_000 }, async (t) => {
  const nat = await natLab({ sites: ['part'] });
  after(() => nat.destroy());
  const { lab } = nat;
  const port = 18443;
  const hub = await startHub({ group: lab.group, netns: lab.ns('public'), listen: `${nat.public.ip}:${port}`, publicUrl: `https://${nat.public.ip}:${port}`, args: PING });
  const agent = await startAgent({ group: lab.group, hub, name: 'part', token: await joinToken(hub), netns: lab.ns('part'), args: PING });
  after(() => {
    for (const d of [hub.dataDir, agent.dataDir]) fs.rmSync(d, { recursive: true, force: true });
  });
  // The site's only link (to the router): no FIN, no RST gets through once it is down.
  const links = (await runOk('ip', ['-n', lab.ns('part'), '-o', 'link', 'show'])).stdout.split('\n').map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n && n !== 'lo');
  assert.equal(links.length, 1, `site links: ${links.join(', ')}`);
  const hubSaw = nextLine(hub.child, /missed its keepalive deadline/, 30_000, 'the hub to detect the partition');
  const agentSaw = nextLine(agent.child, /missed its keepalive deadline/, 30_000, 'the agent to detect the partition');
  const down = performance.now();
  await runOk('ip', ['-n', lab.ns('part'), 'link', 'set', links[0]!, 'down']);
  const [hubAt, agentAt] = await Promise.all([hubSaw, agentSaw]);
  const hubMs = hubAt - down;
  const agentMs = agentAt - down;
  const line = `chaos: partition detected by the hub after ${hubMs.toFixed(0)} ms, by the agent after ${agentMs.toFixed(0)} ms (ping interval 1000 ms)`;
  console.log(line);
  t.diagnostic(line);
  // 2 intervals, and a quarter interval for a loaded machine to run the timer and write the line.
  assert.ok(hubMs < 2_250, `the hub took ${hubMs.toFixed(0)} ms`);
  assert.ok(agentMs < 2_250, `the agent took ${agentMs.toFixed(0)} ms`);
  await runOk('ip', ['-n', lab.ns('part'), 'link', 'set', links[0]!, 'up']);
});

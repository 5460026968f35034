/**
 * Many real agents in one process, for bench/scale.ts (forked, IPC). Each agent is the real agent code
 * (startAgent from src/agent/agent.ts) with its own data dir, key, certificate and TLS connection; they
 * only share the process, as containers on one node would share a kernel.
 *
 *   → { cmd: 'enroll', token, hub, names, root, concurrency }   joins through the real join API
 *   ← { kind: 'enrolled', count, failed, firstError? }
 *   → { cmd: 'start', hub, names, root, routes? }                 starts every agent at once (routes[i]: what names[i] advertises)
 *   ← { kind: 'events', events: [[index, 'c' | 'd', epochMs], …] }  connected / disconnected, batched
 *   → { cmd: 'stop' }                                             stops them all, then exits
 */
import path from 'node:path';
import { pino } from 'pino';
import { dataDirStore, enroll } from '../../src/agent/identity.js';
import { agentConfig } from '../../src/agent/config.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';

type Msg =
  | { cmd: 'enroll'; token: string; hub: string; names: string[]; root: string; concurrency: number }
  | { cmd: 'start'; hub: string; names: string[]; root: string; routes?: string[][] }
  | { cmd: 'stop' };

// Agents log only errors here: thousands of them logging their reconnects would measure this process's
// stdout, not the hub.
// (BENCH_SCALE_AGENT_LOG=info|warn shows them, on stderr, when a run needs explaining.)
const log = pino({ level: process.env.BENCH_SCALE_AGENT_LOG ?? 'error', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
const agents: Agent[] = [];
let events: Array<[number, 'c' | 'd', number]> = [];

setInterval(() => {
  if (events.length === 0) return;
  process.send!({ kind: 'events', events });
  events = [];
}, 100).unref();

async function enrollAll(m: Extract<Msg, { cmd: 'enroll' }>): Promise<void> {
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const worker = async () => {
    while (next < m.names.length) {
      const name = m.names[next++]!;
      try {
        await enroll({ token: m.token, name, labels: {}, store: dataDirStore(path.join(m.root, name)), hubOverride: m.hub });
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: m.concurrency }, worker));
  process.send!({ kind: 'enrolled', count: m.names.length - failed, failed, ...(firstError ? { firstError } : {}) });
}

async function startAll(m: Extract<Msg, { cmd: 'start' }>): Promise<void> {
  await Promise.all(
    m.names.map(async (name, i) => {
      const config = agentConfig({ name, dataDir: path.join(m.root, name), hub: m.hub, logLevel: 'error', route: (m.routes?.[i] ?? []).join(',') }, {});
      const agent = await startAgent(config, log.child({ agent: name }));
      agent.on('connected', () => events.push([i, 'c', Date.now()]));
      agent.on('disconnected', () => events.push([i, 'd', Date.now()]));
      agents.push(agent);
    }),
  );
  process.send!({ kind: 'started', count: agents.length });
}

process.on('message', (m: Msg) => {
  if (m.cmd === 'enroll') void enrollAll(m);
  else if (m.cmd === 'start') void startAll(m);
  else void Promise.all(agents.map((a) => a.stop())).then(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));

/**
 * The in-process tier: a real hub (`startHub`, port 0, a temp data dir) and real agents (`startAgent`,
 * joined with join tokens from the hub's own enrollment) in the test's own process, with silent
 * loggers; everything is stopped in `after()`. Requests go over real sockets on 127.0.0.1.
 *
 * @module
 * @example
 *   const lab = await inProcessHub();
 *   await lab.agent('site1');
 *   await lab.grant({ subjectKind: 'user', subject: 'ana', agent: 'site1' });
 *   const opened = await lab.hub.opener.open({ target: 'site1:22', principal: ANA, door: 'connect', source: 'test' });
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after } from 'node:test';
import { agentConfig, type AgentFlags } from '../../src/agent/config.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { hubConfig, type HubFlags } from '../../src/hub/config.js';
import { startHub, type Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/shared/log.js';
import type { AgentAuthority, GrantRecord } from '../../src/store/store.js';
import type { AgentTunnels } from '../../src/hub/agentTunnels.js';
import { withDeadline } from './proc.js';
import { tempDir } from './warren.js';

export interface InProcessHub {
  readonly hub: Hub;
  readonly adminToken: string;
  /**
   * Joins and starts an agent named `name` (its join token allows exactly the clusters, routes and source IPs its
   * flags claim) and resolves once the hub has admitted its tunnel.
   */
  agent(name: string, flags?: AgentFlags): Promise<Agent>;
  /** Adds a grant straight to the store (the API's own checks are tested through the API). */
  grant(g: Partial<GrantRecord> & Pick<GrantRecord, 'subjectKind' | 'subject'>): Promise<GrantRecord>;
  /** A hub access token for `user`. */
  token(user: string, groups?: readonly string[]): Promise<{ token: string; id: string }>;
  /**
   * Calls the hub over HTTPS (the hub CA trusted), with `token` as bearer or `cert` as client
   * certificate when given; a JSON body is parsed.
   */
  request(
    method: string, path: string, opts?: { token?: string; body?: unknown; cert?: { certPem: string; keyPem: string } },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests assert on JSON bodies; a wrong shape fails the assertion
  ): Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }>;
}

const HOST = '127.0.0.1';

/** Resolves when the hub has admitted a tunnel from agent `name`. */
function admitted(tunnels: AgentTunnels, name: string, ms: number): Promise<void> {
  let on: ((n: string) => void) | undefined;
  const up = new Promise<void>((resolve) => {
    on = (n) => {
      if (n === name) resolve();
    };
    tunnels.on('connected', on);
  });
  return withDeadline(up, ms, `the hub admitting agent "${name}"`).finally(() => tunnels.off('connected', on!));
}

/** Starts a hub with `flags` (over quiet, fast defaults) and stops it, and its agents, in `after()`. */
export async function inProcessHub(flags: HubFlags = {}): Promise<InProcessHub> {
  const dataDir = tempDir('inproc-hub');
  const hub = await startHub(hubConfig({ listen: `${HOST}:0`, dataDir, pingInterval: '1s', drainTimeout: '100ms', ...flags }, {}), silentLogger);
  const agents: Agent[] = [];
  const dirs = [dataDir];
  after(async () => {
    // The hub first, as in a real shutdown: it drains (GOAWAY) while its agents are still there to
    // answer. The other order can leave the drain waiting forever on a session whose agent just went
    // away (seen after streams on it were reset), which is a hub issue of its own, not this tier's.
    await hub.close();
    await Promise.all(agents.map((a) => a.stop()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  const adminToken = fs.readFileSync(hub.adminTokenPath, 'utf8').trim();
  const ca = fs.readFileSync(hub.caPath, 'utf8');

  return {
    hub,
    adminToken,
    async agent(name, agentFlags = {}) {
      const list = (s: string | undefined) => (s ? s.split(',') : []);
      const clusters = list(agentFlags.cluster ?? (agentFlags.kube ? name : undefined));
      const authority: AgentAuthority = { name, clusters, routes: list(agentFlags.route), sourceIps: list(agentFlags.sourceIp) };
      const { token } = await hub.enrollment.createJoinToken({ ttlMs: 60_000, uses: 1, labels: {}, authority, createdBy: 'test' });
      const dataDir = tempDir(`inproc-agent-${name}`);
      dirs.push(dataDir);
      const up = admitted(hub.tunnels, name, 15_000);
      const agent = await startAgent(agentConfig({ name, dataDir, token, pingInterval: '1s', reconnectMax: '250ms', ...agentFlags }, {}), silentLogger);
      agents.push(agent);
      await up;
      return agent;
    },
    async grant(g) {
      const record: GrantRecord = {
        id: `g_${randomBytes(6).toString('hex')}`, agent: null, host: null, ports: null, cluster: null, kubeGroups: [],
        createdAt: Date.now(), createdBy: 'test', ...g,
      };
      await hub.store.createGrant(record);
      return record;
    },
    token: (user, groups = []) => hub.tokens.issue({ user, groups, ttlMs: 600_000, createdBy: 'test' }),
    request(method, urlPath, opts = {}) {
      return new Promise((resolve, reject) => {
        const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
        const req = https.request(`${hub.url}${urlPath}`, {
          method, ca, ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}), headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode!, body: text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : text, headers: res.headers });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    },
  };
}

async function listening(server: net.Server): Promise<number> {
  server.listen(0, HOST);
  await withDeadline(once(server, 'listening'), 5_000, `a test server listening on ${HOST}:0`);
  after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A TCP echo server on 127.0.0.1 that keeps half-close (it ends its side after the client's EOF); its port. */
export function echoServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket.once('close', () => sockets.delete(socket)));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  after(() => sockets.forEach((s) => s.destroy()));
  return listening(server);
}

/** A port on 127.0.0.1 that was free a moment ago (for an entry that must name its port). */
export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Kube streams to the agents of a cluster: which agents serve it, opening a stream to one of them
 * (least loaded first, the next one when a tunnel turns out to be gone), and a keep-alive pool of such
 * streams per cluster, so consecutive requests — from any caller, identity travels per request — reuse
 * an open stream instead of paying a round trip to the agent for a new one.
 *
 * Balancing happens when a stream is opened: the pool opens a new stream only when every pooled one is
 * busy (concurrent requests, a watch, logs -f), and each new stream goes to the agent with the fewest
 * open streams (ties at random). A tunnel that drops takes its streams with it; the pool forgets them
 * and the next request opens a stream on an agent that is still there.
 */
import http from 'node:http';
import { constants as h2c, type ClientHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { WarrenError, isErrorCode } from '../../errors.js';
import { ERROR_HEADER, KUBE_SERVICE, MESSAGE_HEADER, SERVICE_HEADER } from '../../tunnel/protocol.js';
import { streamSocket, type StreamSocket } from '../../tunnel/streamSocket.js';

/** The part of a hub tunnel this module needs (AgentTunnel has it). */
export interface KubeTunnel {
  readonly name: string;
  readonly info: { readonly clusters: readonly string[] };
  readonly session: ClientHttp2Session;
  streamsOpen: number;
}

export interface KubeTunnelView {
  connected(): Iterable<KubeTunnel>;
}

/** Idle pooled streams are closed after this (well before the agent's own idle limit, so we close first). */
const POOL_IDLE_MS = 60_000;

export class ClusterStreams {
  private readonly pools = new Map<string, http.Agent>();

  constructor(
    private readonly tunnels: KubeTunnelView,
    private readonly openTimeoutMs: number,
  ) {}

  /** Connected agents serving `cluster`, least loaded first (ties in random order). */
  agentsFor(cluster: string): KubeTunnel[] {
    const out: Array<{ t: KubeTunnel; k: number }> = [];
    for (const t of this.tunnels.connected()) if (t.info.clusters.includes(cluster) && !t.session.closed) out.push({ t, k: Math.random() });
    return out.sort((a, b) => a.t.streamsOpen - b.t.streamsOpen || a.k - b.k).map((x) => x.t);
  }

  /**
   * A new kube stream to an agent of `cluster`, as a socket for HTTP/1.1; its `tag` is the agent's name.
   * Tries the next agent when one's tunnel is lost or the agent refuses (e.g. started without --kube).
   */
  async open(cluster: string): Promise<StreamSocket> {
    const agents = this.agentsFor(cluster);
    if (agents.length === 0) throw new WarrenError('WARREN_E_AGENT_OFFLINE', `cluster ${cluster} has no connected agent`);
    let last: WarrenError | undefined;
    for (const t of agents) {
      try {
        const socket = await this.openOn(t, cluster);
        socket.tag = t.name;
        return socket;
      } catch (err) {
        last = err instanceof WarrenError ? err : new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${t.name}" failed`);
      }
    }
    throw last!;
  }

  /** The keep-alive pool of kube streams for `cluster` (an http.Agent whose connections are streams). */
  pool(cluster: string): http.Agent {
    let pool = this.pools.get(cluster);
    if (!pool) {
      pool = new KubeStreamPool(() => this.open(cluster));
      this.pools.set(cluster, pool);
    }
    return pool;
  }

  close(): void {
    for (const p of this.pools.values()) p.destroy();
    this.pools.clear();
  }

  private openOn(t: KubeTunnel, cluster: string): Promise<StreamSocket> {
    let stream: ReturnType<ClientHttp2Session['request']>;
    try {
      stream = t.session.request({ ':method': 'CONNECT', ':authority': cluster, [SERVICE_HEADER]: KUBE_SERVICE }, { endStream: false });
    } catch (err) {
      return Promise.reject(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${t.name}" is closing`, { agent: t.name }, { cause: err }));
    }
    t.streamsOpen++;
    stream.once('close', () => t.streamsOpen--);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: WarrenError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!stream.closed) stream.close(h2c.NGHTTP2_CANCEL);
        reject(err);
      };
      const timer = setTimeout(() => fail(new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent "${t.name}" did not answer within ${this.openTimeoutMs} ms`, { agent: t.name })), this.openTimeoutMs);
      stream.once('response', (headers) => {
        if (headers[':status'] !== 200) {
          const code = String(headers[ERROR_HEADER] ?? '');
          return fail(new WarrenError(isErrorCode(code) ? code : 'WARREN_E_TUNNEL_LOST', String(headers[MESSAGE_HEADER] ?? `agent "${t.name}" refused the kube stream`), { agent: t.name }));
        }
        settled = true;
        clearTimeout(timer);
        resolve(streamSocket(stream));
      });
      stream.once('error', () => fail(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${t.name}" failed while opening the stream`, { agent: t.name })));
      stream.once('close', () => fail(new WarrenError('WARREN_E_TUNNEL_LOST', `tunnel to agent "${t.name}" closed while opening the stream`, { agent: t.name })));
    });
  }
}

/** An http.Agent whose "connections" are kube streams, opened asynchronously. */
class KubeStreamPool extends http.Agent {
  constructor(private readonly openStream: () => Promise<StreamSocket>) {
    super({ keepAlive: true, maxFreeSockets: 64, timeout: POOL_IDLE_MS, scheduling: 'lifo' });
  }

  override createConnection(_options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    this.openStream().then(
      (s) => callback?.(null, s),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

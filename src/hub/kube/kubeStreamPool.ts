/**
 * A keep-alive pool of kube streams for one cluster: an `http.Agent` whose "connections" are tunnel
 * streams to the cluster's agents, so consecutive requests — from any caller, identity travels per
 * request — reuse an open stream instead of paying a round trip to the agent for a new one. New
 * streams come from the opener (which picks the agent, least loaded first, and fails over).
 *
 * A pooled stream is only as good as its tunnel: when a tunnel announces it is going (GOAWAY: the agent
 * drains on a rollout) or closes, the idle streams on it are dropped at once, and busy ones when their
 * request is done, so no request is sent down a tunnel that will not answer (and a draining agent is
 * left with no stream once its requests are answered). Requests already in flight on it finish
 * (GOAWAY) or fail (close), and the kube router retries the idempotent ones.
 */
import http from 'node:http';
import type { Http2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { StreamSocket } from '../../tunnel/streamSocket.js';

/** Idle pooled streams are closed after this (well before the agent's own idle limit, so we close first). */
const POOL_IDLE_MS = 60_000;

export class KubeStreamPool extends http.Agent {
  private readonly watched = new WeakSet<Http2Session>();

  constructor(private readonly openStream: () => Promise<StreamSocket>) {
    super({ keepAlive: true, maxFreeSockets: 64, timeout: POOL_IDLE_MS, scheduling: 'lifo' });
  }

  override createConnection(_options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    this.openStream().then(
      (s) => {
        this.watch(s.stream.session);
        callback?.(null, s);
      },
      (err: unknown) => callback?.(err as Error, undefined as unknown as Duplex),
    );
    return undefined;
  }

  /** A stream whose tunnel is going (GOAWAY) or gone is not kept for another request: it is closed. */
  override keepSocketAlive(socket: Duplex): boolean {
    const session = (socket as StreamSocket).stream.session;
    if (!session || session.closed || session.destroyed) return false;
    // Node's returns whether it kept the socket (its typings say void).
    return (http.Agent.prototype.keepSocketAlive as (this: http.Agent, s: Duplex) => boolean).call(this, socket);
  }

  private watch(session: Http2Session | undefined): void {
    if (!session || this.watched.has(session)) return;
    this.watched.add(session);
    const dropIdle = () => {
      for (const sockets of Object.values(this.freeSockets)) {
        for (const s of [...(sockets ?? [])]) if ((s as unknown as StreamSocket).stream.session === session) s.destroy();
      }
    };
    session.once('goaway', dropIdle);
    session.once('close', dropIdle);
  }
}

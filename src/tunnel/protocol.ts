/**
 * The tunnel's wire contract, shared by hub and agent.
 *
 * The agent dials TLS to the hub's main port with ALPN `warren/1` and its client certificate. Then the
 * roles flip: the hub runs an HTTP/2 *client* over that socket and the agent an HTTP/2 *server*, so the
 * hub can open streams toward the agent without the agent ever accepting a connection.
 *
 *   hub → agent   GET     /warren/v1/info           → 200 JSON AgentInfo (name, version, routes, …)
 *   hub → agent   CONNECT :authority = host:port    → 200, then raw bytes both ways (one TCP stream)
 *                                                   → 4xx/5xx with `warren-error: WARREN_E_…` and
 *                                                     `warren-message: …` when the agent refuses or fails
 *   hub → agent   CONNECT :authority = CLUSTER      (a cluster name the agent serves with --kube)
 *                 warren-service: kube              → 200, then HTTP/1.1 both ways on the stream: the hub
 *                                                     sends kube API requests (keep-alive, several in a row,
 *                                                     possibly for different callers), the agent answers them
 *                                                     from its API server. Per request, the hub's trusted
 *                                                     headers carry the caller:
 *                   warren-impersonate-user: U       (exactly one; the agent refuses a request without it)
 *                   warren-impersonate-group: G      (one header line per group, zero or more)
 *                                                     The agent drops every incoming Authorization,
 *                                                     Impersonate-* and warren-* header, adds its own
 *                                                     credentials and Impersonate-User/-Group from these.
 *                                                     An `Upgrade` request (exec, attach, port-forward) turns
 *                                                     the stream into a raw byte pipe after the 101.
 *                                                   → 4xx/5xx with warren-error / warren-message when the
 *                                                     agent serves no such cluster (see src/agent/kube/)
 *   hub → agent   GOAWAY with JSON opaque data {code, message} when the hub refuses the agent
 *                 (revoked certificate): the agent reports it and stops retrying.
 *   hub → agent   PUT     /warren/v1/listeners      JSON ListenerSet: every forward entry this agent must
 *                                                   listen on (the whole set, not a delta). Sent when the
 *                                                   agent connects and whenever the set changes; the agent
 *                                                   reconciles (opens new, closes gone, keeps unchanged)
 *                                                   → 200 JSON ListenerReport (bound address or bind error
 *                                                     per forward). Listeners live only as long as this
 *                                                     tunnel: the agent closes them all when it drops.
 *
 *   hub → agent   CONNECT :authority = host:port
 *                 warren-source-ip: IP              (an egress rule, design §6) the agent dials the target
 *                                                   from this local address; it refuses an address it was
 *                                                   not started with (--source-ip)
 *
 * Agent-initiated streams (a connection accepted on an agent-side forward entry) go the normal way
 * round on a second connection: the agent dials TLS to the same port with ALPN `warren-up/1` and the
 * same client certificate, acts as the HTTP/2 client, and the hub serves HTTP/2. It is opened lazily
 * while the agent has listeners.
 *
 *   agent → hub   CONNECT :authority = FORWARD:PORT (the forward's name and the entry port that accepted)
 *                 warren-source: IP:PORT            (the client as the agent's listener saw it)
 *                                                   → 200, then raw bytes both ways, once the hub has
 *                                                     reached the forward's target through the router
 *                                                   → 4xx/5xx with warren-error / warren-message when the
 *                                                     forward is unknown, is not this agent's entry, the
 *                                                     source is outside --allow-from, or the target fails
 *
 * Hubs sharing one store relay to each other (docs/high-availability.md): a hub dials TLS to another
 * hub's main port with ALPN `warren-hub/1` and its hub-peer client certificate (OU=warren-hub-peer,
 * issued by the shared CA; nothing else is served there), acts as the HTTP/2 client, and asks for a
 * stream to an agent whose tunnel is on the other hub:
 *
 *   hub → hub     CONNECT :authority = host:port or CLUSTER (as hub → agent)
 *                 warren-agent: NAME                (the agent, which must be connected to that hub)
 *                 warren-service, warren-source-ip  (passed on to the agent unchanged)
 *                                                   → 200, then raw bytes both ways, once the agent has
 *                                                     connected it; → 4xx/5xx with warren-error /
 *                                                     warren-message as the agent or that hub refused
 *                                                   (WARREN_E_AGENT_OFFLINE: the agent is not there now)
 *                 The asking hub has admitted the stream (grants, quotas) and writes its audit row;
 *                 the relaying hub only carries it. A failure on either leg resets the stream.
 */
import type { Settings } from 'node:http2';

export const ALPN = 'warren/1';
/** ALPN of the agent's second, normal-direction HTTP/2 connection (agent = client, hub = server). */
export const UP_ALPN = 'warren-up/1';
/** ALPN of a hub's relay connection to another hub (hub = client, other hub = server). */
export const HUB_ALPN = 'warren-hub/1';
/** Relay CONNECT header: the agent, connected to the answering hub, that should carry the stream. */
export const AGENT_HEADER = 'warren-agent';
export const INFO_PATH = '/warren/v1/info';
export const LISTENERS_PATH = '/warren/v1/listeners';
export const SOURCE_HEADER = 'warren-source';
export const ERROR_HEADER = 'warren-error';
export const MESSAGE_HEADER = 'warren-message';
/** CONNECT header naming a service of the agent instead of a TCP target (`kube`: the Kubernetes API). */
export const SERVICE_HEADER = 'warren-service';
/** CONNECT header naming the local address the agent must dial from (a gateway agent's --source-ip). */
export const SOURCE_IP_HEADER = 'warren-source-ip';
export const KUBE_SERVICE = 'kube';
/** Trusted per-request headers on a kube stream: set by the hub only (it strips any a client sends). */
export const IMPERSONATE_USER_HEADER = 'warren-impersonate-user';
export const IMPERSONATE_GROUP_HEADER = 'warren-impersonate-group';

/**
 * Flow-control sizes. Measured on loopback: a per-stream window ≥ 256 KiB and a 16 MiB connection
 * window roughly double single-stream throughput over Node's 64 KiB defaults. The per-stream window
 * stays well below the connection window so one stalled reader cannot take the whole connection
 * window and stall its siblings.
 */
export const STREAM_WINDOW = 1 << 20;
export const CONNECTION_WINDOW = 16 << 20;
export const MAX_CONCURRENT_STREAMS = 4096;

export const H2_SETTINGS: Settings = {
  initialWindowSize: STREAM_WINDOW,
  maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
  maxFrameSize: 1 << 16,
  enablePush: false,
};

/** Node's default (10 MB) is too small for a busy tunnel with 1 MiB stream windows. */
export const MAX_SESSION_MEMORY_MB = 256;

export interface AgentInfo {
  readonly name: string;
  readonly version: string;
  readonly hostname: string;
  readonly labels: Record<string, string>;
  readonly routes: readonly string[];
  readonly clusters: readonly string[];
  readonly allow: readonly string[];
  /** Addresses this agent owns and dials from for egress rules (--source-ip); absent from older agents. */
  readonly sourceIps?: readonly string[];
}

export interface Refusal {
  readonly code: string;
  readonly message: string;
}

/** One listener the hub asks an agent to hold (a forward whose entry is on that agent). */
export interface ListenerSpec {
  /** The forward's name; also what the agent names in its CONNECT back to the hub. */
  readonly forward: string;
  /** Bind address on the agent's host (0.0.0.0: every IPv4 interface). */
  readonly host: string;
  /** 0: any free port; the agent reports the one it got and the hub keeps it. */
  readonly port: number;
}

export interface ListenerSet {
  readonly listeners: readonly ListenerSpec[];
}

export interface ListenerStatus {
  readonly forward: string;
  readonly listening: boolean;
  /** HOST:PORT actually bound, when listening. */
  readonly address?: string;
  /** Why it is not listening (bind failure), when not. */
  readonly error?: Refusal;
}

export interface ListenerReport {
  readonly listeners: readonly ListenerStatus[];
}

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
 *   hub → agent   GOAWAY with JSON opaque data {code, message} when the hub refuses the agent
 *                 (revoked certificate): the agent reports it and stops retrying.
 */
import type { Settings } from 'node:http2';

export const ALPN = 'warren/1';
export const INFO_PATH = '/warren/v1/info';
export const ERROR_HEADER = 'warren-error';
export const MESSAGE_HEADER = 'warren-message';

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
}

export interface Refusal {
  readonly code: string;
  readonly message: string;
}

/**
 * The narrow interface every front door depends on. A door parses its own protocol, asks an
 * `Authenticator` who the caller is, and asks an `Opener` for a stream to the target; it never sees the
 * session registry, the router or the store.
 */
import type { Duplex } from 'node:stream';
import type { EarlyData } from '../tunnel/earlyData.js';

/** Who is asking. `groups` always includes the groups from the credential; admins carry `warren:admins`. */
export interface Principal {
  readonly user: string;
  readonly groups: readonly string[];
  /** How the caller proved it: hub-issued token, client certificate, external JWT, or file permissions. */
  readonly via: 'token' | 'cert' | 'jwt' | 'uds' | 'forward';
  /** The hub access token it authenticated with, so that revoking the token closes what it opened. */
  readonly tokenId?: string;
  /**
   * Set only by the hub for its own callers, never from a credential: the one target this principal
   * may open, without a grant. A forward runs as `forward:NAME` with no groups and `scope.target` =
   * its target, because the admin who created the forward already chose that target (see
   * docs/forwards.md). The opener refuses every other target for it.
   */
  readonly scope?: { readonly target: string };
}

export type DoorName = 'connect' | 'socks5' | 'forward' | 'kube' | 'uds' | 'api' | 'web-shell';

/**
 * Where a stream goes: a TCP target (`HOST:PORT`, resolved by the router, design §3) or a Kubernetes
 * cluster's API server, through one of the agents serving that cluster.
 */
export type Destination = { readonly target: string } | { readonly cluster: string };

interface Caller {
  readonly principal: Principal;
  readonly door: DoorName;
  /** The client's address as the hub saw it, for the audit trail (e.g. "10.1.2.3:51234"). */
  readonly source: string;
  readonly signal?: AbortSignal;
}

/**
 * Where an egress rule's far end dials (design §6): this agent, from this one of its source addresses,
 * instead of the agent the router would pick. Only for a scoped principal (a forward's own target).
 */
export interface ViaGateway {
  readonly agent: string;
  readonly sourceIp: string;
}

/** A stream to a TCP target: HOST:PORT as the client wrote it (IPv6 hosts in brackets). */
export type OpenRequest = {
  readonly target: string;
  readonly gateway?: ViaGateway;
  /**
   * The client, when what it sends may travel before the agent has answered (early data): the door has
   * not answered yet, so a refusal still gets the door's own answer, and the client is the one later
   * passed to relay(). Read only until the stream is open, then left paused; bytes a door read past its
   * own protocol must be unshifted into it first. Its 'close' (a reset, or both directions ended) ends
   * the opening as `signal` would: a door need not watch for it.
   */
  readonly early?: Duplex;
} & Caller;

export type AdmitRequest = Destination & Caller & { readonly gateway?: ViaGateway };

/**
 * A use the pipeline admitted (grants checked, a quota place taken, watched for revocation), before or
 * without a stream of its own: the kube door admits every HTTP request and sends it over a pooled stream.
 */
export interface Admission {
  /** For a cluster: the Kubernetes groups the caller's grants add (--kube-groups). */
  readonly kubeGroups: readonly string[];
  /** Aborted when the use is revoked (its token, grant or agent deleted): close what it holds. */
  readonly revoked: AbortSignal;
  /** For a cluster: the keep-alive pool of kube streams to its agents (an http.Agent). */
  readonly pool: import('node:http').Agent | undefined;
  /**
   * Opens a stream of this use's own: picks the agent, least loaded first, the next one if a tunnel is
   * lost. `early`: the client's bytes sent ahead of the agent's answer (src/tunnel/earlyData.ts).
   */
  dial(early?: EarlyData): Promise<{ agent: string; stream: Duplex }>;
  /** Records which agent a pooled request went to (so removing that agent revokes the request). */
  usedAgent(agent: string): void;
  /** Frees the quota place and the revocation watch; idempotent. */
  end(): void;
}

export interface RelayResult {
  /** Bytes from the client toward the target. */
  readonly bytesIn: number;
  /** Bytes from the target toward the client. */
  readonly bytesOut: number;
  /** Why the relay ended: 'closed' (both sides ended cleanly) or an error description. */
  readonly reason: string;
}

export interface OpenedStream {
  /** The agent that dialled the target. */
  readonly agent: string;
  /** A stream connected to the target through the agent's tunnel. */
  readonly stream: Duplex;
  /** Bytes of the client's (OpenRequest.early) already sent on `stream`; relay() counts them in `bytesIn`. */
  readonly sentEarly?: number;
  /**
   * Carries bytes between `client` and the target in both directions, each direction ending on its own
   * (TCP half-close is preserved), until both have ended or either side fails; records the audit row.
   */
  relay(client: Duplex): Promise<RelayResult>;
}

export interface Opener {
  /**
   * Resolves the target to an agent, checks the caller's grants, and dials through the tunnel.
   * Rejects with a WarrenError (code, HTTP status and SOCKS reply) on every refusal; refusals are audited.
   */
  open(request: OpenRequest): Promise<OpenedStream>;
}

/** The admission part of the pipeline alone, for the kube door (its audit rows are per HTTP request). */
export interface Admitter {
  /** Policy, quota and revocation watch; rejects with a WarrenError, which the caller audits. */
  admit(request: AdmitRequest): Promise<Admission>;
}

export interface Authenticator {
  /**
   * A bearer token (hub-issued access token or trusted external JWT) presented at `door`. Rejects with
   * WARREN_E_UNAUTHENTICATED, also for an external JWT at a door it is not accepted at.
   */
  fromToken(token: string, door: DoorName): Promise<Principal>;
}

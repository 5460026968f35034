/**
 * The narrow interface every front door depends on. A door parses its own protocol, asks an
 * `Authenticator` who the caller is, and asks an `Opener` for a stream to the target; it never sees the
 * session registry, the router or the store.
 */
import type { Duplex } from 'node:stream';

/** Who is asking. `groups` always includes the groups from the credential; admins carry `warren:admins`. */
export interface Principal {
  readonly user: string;
  readonly groups: readonly string[];
  /** How the caller proved it: hub-issued token, client certificate, external JWT, or file permissions. */
  readonly via: 'token' | 'cert' | 'jwt' | 'uds' | 'forward';
  /**
   * Set only by the hub for its own callers, never from a credential: the one target this principal
   * may open, without a grant. A forward runs as `forward:NAME` with no groups and `scope.target` =
   * its target, because the admin who created the forward already chose that target (see
   * docs/forwards.md). The opener refuses every other target for it.
   */
  readonly scope?: { readonly target: string };
}

export type DoorName = 'connect' | 'socks5' | 'forward' | 'kube' | 'uds' | 'api';

export interface OpenRequest {
  /** HOST:PORT as the client wrote it (IPv6 hosts in brackets). */
  readonly target: string;
  readonly principal: Principal;
  readonly door: DoorName;
  /** The client's address as the hub saw it, for the audit trail (e.g. "10.1.2.3:51234"). */
  readonly source: string;
  readonly signal?: AbortSignal;
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

export interface Authenticator {
  /**
   * A bearer token (hub-issued access token or trusted external JWT) presented at `door`. Rejects with
   * WARREN_E_UNAUTHENTICATED, also for an external JWT at a door it is not accepted at.
   */
  fromToken(token: string, door: DoorName): Promise<Principal>;
}

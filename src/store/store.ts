/**
 * The hub's persistent state behind one interface, so SQLite (default, embedded) and PostgreSQL (HA)
 * implement the same contract. Methods are async even where SQLite is synchronous.
 */

/**
 * What a join token lets an agent claim, copied onto the agent's record at enrollment and checked at
 * every tunnel admission. At most one of `name` and `namePattern`; neither: any free name.
 */
export interface AgentAuthority {
  readonly name?: string;
  /** Glob over agent names (`dev-*`). */
  readonly namePattern?: string;
  readonly clusters: readonly string[];
  /** CIDRs and DNS suffixes; an agent route is allowed when it lies inside one of them. */
  readonly routes: readonly string[];
  /** Addresses a gateway agent may use for egress and ingress rules (--source-ip); absent on older records: none. */
  readonly sourceIps?: readonly string[];
}

export interface JoinTokenRecord {
  readonly id: string;
  /** SHA-256 of the token secret; the secret itself is never stored. */
  readonly secretHash: Buffer;
  readonly expiresAt: number;
  /** null: unlimited. */
  readonly maxUses: number | null;
  readonly used: number;
  readonly labels: Record<string, string>;
  readonly authority: AgentAuthority;
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface AgentRecord {
  readonly name: string;
  /** Serial of the only certificate accepted for this agent (hex, no leading zeros). */
  readonly certSerial: string;
  readonly certExpiresAt: number;
  readonly labels: Record<string, string>;
  /** What its join token let it claim. */
  readonly authority: AgentAuthority;
  readonly createdAt: number;
  /** What the agent reported when it last connected (version, routes, clusters, allow-list). */
  readonly meta: AgentMeta;
  readonly lastSeen: number | null;
}

export interface AgentMeta {
  readonly version?: string;
  readonly routes?: readonly string[];
  readonly clusters?: readonly string[];
  readonly allow?: readonly string[];
  readonly hostname?: string;
  readonly sourceIps?: readonly string[];
}

export interface GrantRecord {
  readonly id: string;
  readonly subjectKind: 'user' | 'group';
  readonly subject: string;
  /** Glob over agent names, e.g. "prod-*". null for a cluster grant. */
  readonly agent: string | null;
  /** Glob over host names or a CIDR; null: any host the agent serves. */
  readonly host: string | null;
  /** "22,8000-8100"; null: any port. */
  readonly ports: string | null;
  /** Cluster name (glob); null for a target grant. */
  readonly cluster: string | null;
  readonly kubeGroups: readonly string[];
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface AccessTokenRecord {
  readonly id: string;
  readonly user: string;
  readonly groups: readonly string[];
  readonly expiresAt: number | null;
  readonly createdAt: number;
  readonly createdBy: string;
  readonly revokedAt: number | null;
}

export interface AuditRow {
  readonly time: number;
  readonly kind: 'stream' | 'kube' | 'admin' | 'agent' | 'shell';
  readonly user: string | null;
  readonly door: string | null;
  readonly agent: string | null;
  readonly target: string | null;
  readonly result: 'ok' | 'denied' | 'error';
  readonly reason: string | null;
  readonly bytesIn: number | null;
  readonly bytesOut: number | null;
  readonly durationMs: number | null;
  readonly source: string | null;
  /** Kube requests: the Kubernetes verb (get, list, watch, create, …), resource (pods, pods/exec), namespace and name. */
  readonly verb: string | null;
  readonly resource: string | null;
  readonly namespace: string | null;
  readonly name: string | null;
  /** Kube requests: the HTTP status answered (101 for an upgrade, 499 when the client left first). */
  readonly status: number | null;
}

export interface AuditFilter {
  readonly since?: number;
  readonly afterId?: number;
  readonly user?: string;
  readonly agent?: string;
  readonly kind?: AuditRow['kind'];
  readonly limit?: number;
}

/** A TCP forward (`warren forwards create`): where it listens and what it reaches. */
export interface ForwardRecord {
  /** RFC 1123 label. */
  readonly name: string;
  /** null: the entry is on the hub; otherwise the agent that listens. */
  readonly entryAgent: string | null;
  /** Bind address of the entry. */
  readonly entryHost: string;
  /** Entry port; 0 until a free port was bound, then the port that was. */
  readonly entryPort: number;
  /** HOST:PORT, resolved by the router like any other door's target. */
  readonly target: string;
  /** CIDRs that may connect; empty: anyone who can reach the entry. */
  readonly allowFrom: readonly string[];
  readonly createdAt: number;
  readonly createdBy: string;
  /**
   * 'forward': the router picks the agent that dials the target. 'egress': the gateway agent dials it
   * from `sourceIp`. 'ingress': the entry is on the gateway agent, bound to `sourceIp` (design §6).
   * Absent on rows from before egress rules: 'forward'.
   */
  readonly kind?: ForwardKind;
  /** Egress and ingress: the gateway agent. */
  readonly gateway?: string | null;
  /** Egress: the address the gateway dials from; ingress: the address its entry binds. */
  readonly sourceIp?: string | null;
  /** What created it, when not an admin directly: `externalservice/NAME` (`warren apply`). */
  readonly owner?: string | null;
}

export type ForwardKind = 'forward' | 'egress' | 'ingress';

/** An `ExternalService` object as applied (`warren apply -f`), kept to give it back (`warren get`). */
export interface ExternalServiceRecord {
  readonly name: string;
  /** The object as applied (apiVersion, kind, metadata, spec), JSON-safe. */
  readonly manifest: unknown;
  readonly createdAt: number;
  readonly createdBy: string;
}

/** A hub process sharing the store, alive while its lease has not expired. */
export interface HubRecord {
  /** Chosen by the hub at start (a new one per process). */
  readonly id: string;
  /** https://HOST:PORT where other hubs reach this one to relay streams to its agents. */
  readonly relayUrl: string;
  readonly startedAt: number;
  /** When the lease runs out unless renewed, by the store's clock (ms since the epoch). */
  readonly leaseExpiresAt: number;
  /** The lease has not run out, by the store's clock (hubs' clocks may differ from it). */
  readonly alive: boolean;
}

/** Which hub an agent's tunnel is on. */
export interface PresenceRecord {
  readonly agent: string;
  readonly hub: string;
  readonly since: number;
}

export interface Store {
  /** Cheap round trip for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;

  createJoinToken(t: JoinTokenRecord): Promise<void>;
  getJoinToken(id: string): Promise<JoinTokenRecord | undefined>;
  /**
   * Enrolls an agent in one transaction, so a join-token use is spent only by an enrollment that
   * happened: reads the token, lets `build` check it (it throws to refuse; it sees undefined for an
   * unknown id) and make the agent's record, inserts the agent and counts one use. When `build` throws
   * or the name is taken (then: false) nothing changes.
   */
  enrollAgent(tokenId: string, build: (t: JoinTokenRecord | undefined) => AgentRecord): Promise<boolean>;
  listJoinTokens(): Promise<JoinTokenRecord[]>;
  deleteJoinToken(id: string): Promise<boolean>;

  getAgent(name: string): Promise<AgentRecord | undefined>;
  listAgents(): Promise<AgentRecord[]>;
  updateAgentCert(name: string, oldSerial: string, serial: string, expiresAt: number): Promise<boolean>;
  updateAgentSeen(name: string, meta: AgentMeta, lastSeen: number): Promise<void>;
  deleteAgent(name: string): Promise<boolean>;

  createGrant(g: GrantRecord): Promise<void>;
  listGrants(): Promise<GrantRecord[]>;
  deleteGrant(id: string): Promise<boolean>;

  createAccessToken(t: AccessTokenRecord): Promise<void>;
  getAccessToken(id: string): Promise<AccessTokenRecord | undefined>;
  listAccessTokens(): Promise<AccessTokenRecord[]>;
  revokeAccessToken(id: string, now: number): Promise<boolean>;

  /** Returns false when a forward of that name exists. */
  createForward(f: ForwardRecord): Promise<boolean>;
  listForwards(): Promise<ForwardRecord[]>;
  /** Records the port a port-0 entry got, so restarts bind the same one. */
  updateForwardPort(name: string, port: number): Promise<void>;
  deleteForward(name: string): Promise<boolean>;

  /**
   * In one transaction (all or none): stores `service` (replacing one of that name) and replaces every
   * forward owned by `owner` with `forwards`. Throws when a forward name is taken by another owner.
   */
  putExternalService(service: ExternalServiceRecord, owner: string, forwards: readonly ForwardRecord[]): Promise<void>;
  listExternalServices(): Promise<ExternalServiceRecord[]>;
  /** Deletes the service and every forward `owner` owns, in one transaction; false when it did not exist. */
  deleteExternalService(name: string, owner: string): Promise<boolean>;

  /**
   * Tells every hub on this store, this one included, about a change (PostgreSQL NOTIFY; SQLite: this
   * process only, it is one hub). `payload` is at most 7,000 bytes.
   */
  notify(payload: string): Promise<void>;
  /**
   * Calls `fn` with every notification, and with null when some may have been missed (the listening
   * connection was lost and is back): the caller then re-reads what it holds. Returns the unsubscribe.
   */
  listen(fn: (payload: string | null) => void): () => void;

  /**
   * Creates or renews a hub's lease: it expires `leaseMs` from now by the store's clock (PostgreSQL's
   * for every hub alike, so the hubs' own clocks need not agree).
   */
  renewHub(hub: Pick<HubRecord, 'id' | 'relayUrl' | 'startedAt'>, leaseMs: number): Promise<void>;
  /** Every hub row, oldest first, with `alive` judged by the store's clock. */
  listHubs(): Promise<HubRecord[]>;
  /** Deletes a hub's row and the presence of its agents (it stopped, or its lease ran out). */
  removeHub(id: string): Promise<void>;
  /** Records that `agent`'s tunnel is on `hub` now (replacing where it was). */
  setPresence(agent: string, hub: string, since: number): Promise<void>;
  /** Forgets `agent`'s presence if it is still on `hub` (a newer tunnel elsewhere is left alone). */
  clearPresence(agent: string, hub: string): Promise<void>;
  /** All presence rows, or one agent's. */
  listPresence(agent?: string): Promise<PresenceRecord[]>;

  /** Appends the rows in one transaction (all or none); returns their ids in order. */
  appendAudit(rows: readonly AuditRow[]): Promise<number[]>;
  /** The newest `limit` rows (default 1000) that match, oldest first. */
  queryAudit(filter: AuditFilter): Promise<Array<AuditRow & { id: number }>>;
}

/** Where the store lives, as the hub's config resolved it. */
export type StoreLocation =
  | { readonly kind: 'sqlite'; readonly path: string }
  /** `url` may hold the password; `password` (PGPASSWORD, --store-password-file) overrides it. */
  | { readonly kind: 'postgres'; readonly url: string; readonly password?: string };

/** The URL with its password replaced, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

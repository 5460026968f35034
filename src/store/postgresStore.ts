/**
 * The shared store for several hubs: PostgreSQL through a `pg` pool. Same schema history and behaviour
 * as the SQLite store (src/store/migrations.ts, one test suite for both).
 *
 * - Statements are named, so each pooled connection parses one once and then only binds values.
 * - The database may restart under a running hub: a statement or transaction that fails because its
 *   connection went away is retried on a fresh one (with backoff, up to RETRY_WINDOW_MS); the pool's
 *   errors are logged once per outage, never fatal.
 * - Migrations run in one transaction under an advisory lock, so hubs starting together apply each
 *   version once.
 */
import pg from 'pg';
import type { Logger } from '../shared/log.js';
import {
  redactUrl,
  type AccessTokenRecord, type AgentMeta, type AgentRecord, type AuditFilter, type AuditRow, type ExternalServiceRecord, type ForwardRecord,
  type GrantRecord, type HubRecord, type JoinTokenRecord, type PresenceRecord, type Store,
} from './store.js';
import { MIGRATIONS, newerSchemaError } from './migrations.js';
import {
  AUDIT_COLUMNS, auditValues, FORWARD_COLUMNS, forwardValues, json, type Row, toAccessToken, toAgent, toAudit, toExternalService, toForward, toGrant,
  toHub, toJoinToken, toPresence,
} from './rows.js';

export interface PostgresConnection {
  /** postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…] */
  readonly url: string;
  /** Overrides a password in the URL (from PGPASSWORD or --store-password-file). */
  readonly password?: string;
}

/** Arbitrary, fixed: the key of the advisory lock that serializes migrations between hubs. */
const MIGRATION_LOCK = 0x77617272; // "warr"
/** A restart of the database (fast shutdown and start) takes a few seconds; a failover longer. */
const RETRY_WINDOW_MS = 15_000;
const POOL_SIZE = 10;
/** The database's clock in ms: hub leases are judged by one clock, whatever the hubs' own say. */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
/** The NOTIFY channel hubs share. */
const CHANNEL = 'warren_changes';

/** SQLSTATEs and socket errors after which the same statement may succeed on a new connection. */
const TRANSIENT = new Set([
  '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH',
]);

export function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code !== undefined && TRANSIENT.has(e.code)) return true;
  return /Connection terminated|connection error|not queryable|terminating connection/i.test(e?.message ?? '');
}

const INSERT_FORWARD = `INSERT INTO forwards (${FORWARD_COLUMNS.join(', ')}) VALUES (${FORWARD_COLUMNS.map((_, i) => `$${i + 1}`).join(',')}) ON CONFLICT DO NOTHING`;

type Querier = (text: string, values?: readonly unknown[]) => Promise<pg.QueryResult<Row>>;

/** Audit rows per INSERT statement: 17 parameters each, and a statement takes at most 65,535. */
const AUDIT_ROWS_PER_INSERT = 1000;

export class PostgresStore implements Store {
  private readonly names = new Map<string, string>();
  private down = false;
  private readonly listeners = new Set<(payload: string | null) => void>();
  /** The connection that LISTENs, opened with the first listener and reopened when lost. */
  private listener: pg.Client | undefined;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly log: Logger,
  ) {
    // An idle connection the server closed (restart, failover) is removed by the pool; without a
    // listener its 'error' would crash the process.
    pool.on('error', (err) => this.outage(err));
    // The same for a connection in use between two statements (inside a transaction): its statement
    // fails and is retried; the event itself must not be thrown.
    pool.on('connect', (client) => client.on('error', (err) => this.outage(err)));
  }

  /** Connects, applies pending migrations and returns the store; fails when the database is unreachable. */
  static async open(conn: PostgresConnection, log: Logger): Promise<PostgresStore> {
    // pg lets a password in the connection string win over its `password` option, so an overriding
    // password goes into the URL (which is never logged; see redactUrl).
    const url = new URL(conn.url);
    if (conn.password !== undefined) url.password = encodeURIComponent(conn.password);
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max: POOL_SIZE,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    const store = new PostgresStore(pool, url.toString(), log);
    try {
      // No retries at start-up: an unreachable database fails the start with its reason.
      await store.migrate(0);
      // Listening from the start: a change made on another hub from now on is never missed.
      await store.startListening(false);
    } catch (err) {
      await store.close().catch(() => {});
      throw new Error(`cannot open the store at ${redactUrl(conn.url)}: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  private outage(err: Error): void {
    if (this.down) return;
    this.down = true;
    this.log.warn({ err: err.message }, 'store connection lost; retrying');
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info('store reachable again');
  }

  private statement(text: string, values: readonly unknown[] = []): pg.QueryConfig {
    let name = this.names.get(text);
    if (name === undefined) this.names.set(text, (name = `w${this.names.size}`));
    return { name, text, values: values as unknown[] };
  }

  /** Runs `fn` on one connection, retried on a fresh one while the failure is a lost connection. */
  private async withClient<T>(fn: (q: Querier, client: pg.PoolClient) => Promise<T>, retryWindowMs = RETRY_WINDOW_MS): Promise<T> {
    const deadline = Date.now() + retryWindowMs;
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      try {
        client = await this.pool.connect();
        const c = client;
        const result = await fn((text, values) => c.query<Row>(this.statement(text, values)), c);
        client.release();
        this.recovered();
        return result;
      } catch (err) {
        // A connection that failed is not given back to the pool.
        client?.release(isTransient(err) ? (err as Error) : undefined);
        if (!isTransient(err) || Date.now() >= deadline) throw err;
        this.outage(err as Error);
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1_000)));
      }
    }
  }

  private query(text: string, values?: readonly unknown[]): Promise<pg.QueryResult<Row>> {
    return this.withClient((q) => q(text, values));
  }

  /**
   * One transaction; rolled back when `fn` throws, retried whole when the connection was lost. A
   * connection lost while its COMMIT was on the way leaves the outcome unknown: the server may have
   * committed and died before it answered. Run again blindly, the transaction would then apply twice
   * (an audit row written twice, seen in a restart test), so the retry first asks the server whether
   * the transaction committed (`txid_status`, PostgreSQL's way to resolve an interrupted COMMIT) and,
   * if it did, returns what that attempt computed.
   */
  private tx<T>(fn: (q: Querier) => Promise<T>, retryWindowMs?: number): Promise<T> {
    let committing: { xid: string; result: T } | undefined;
    return this.withClient(async (q, client) => {
      if (committing) {
        const status = (await q('SELECT txid_status($1) AS status', [committing.xid])).rows[0]?.status;
        if (status === 'committed') return committing.result;
        committing = undefined;
      }
      // BEGIN and the transaction's id in one round trip: the simple query protocol (no parameters, no
      // statement name) takes several statements and answers with one result each.
      const [, started] = (await client.query('BEGIN; SELECT txid_current()::text AS xid')) as unknown as [pg.QueryResult, pg.QueryResult<Row>];
      const xid = started.rows[0]!.xid as string;
      try {
        const result = await fn(q);
        committing = { xid, result };
        await q('COMMIT');
        return result;
      } catch (err) {
        if (!isTransient(err)) {
          committing = undefined;
          await q('ROLLBACK');
        }
        throw err;
      }
    }, retryWindowMs);
  }

  private async migrate(retryWindowMs: number): Promise<void> {
    await this.tx(async (q) => {
      await q('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await q('CREATE TABLE IF NOT EXISTS warren_schema (version INTEGER NOT NULL)');
      const row = (await q('SELECT version FROM warren_schema')).rows[0];
      if (!row) await q('INSERT INTO warren_schema VALUES (0)');
      const current = Number(row?.version ?? 0);
      if (current > MIGRATIONS.length) throw newerSchemaError(current);
      for (let v = current; v < MIGRATIONS.length; v++) {
        // Simple protocol (no parameters): a migration is several statements.
        for (const sql of MIGRATIONS[v]!.postgres.split(/;\s*(?:\n|$)/).filter((s) => s.trim())) await q(sql);
        await q('UPDATE warren_schema SET version = $1', [v + 1]);
      }
    }, retryWindowMs);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.listener?.end().catch(() => {});
    await this.pool.end();
  }

  async renewHub(h: Pick<HubRecord, 'id' | 'relayUrl' | 'startedAt'>, leaseMs: number): Promise<void> {
    await this.query(
      `INSERT INTO hubs (id, relay_url, started_at, lease_expires_at) VALUES ($1, $2, $3, ${NOW_MS} + $4)
       ON CONFLICT (id) DO UPDATE SET relay_url = EXCLUDED.relay_url, lease_expires_at = EXCLUDED.lease_expires_at`,
      [h.id, h.relayUrl, h.startedAt, leaseMs],
    );
  }

  async listHubs(): Promise<HubRecord[]> {
    return (await this.query(`SELECT *, lease_expires_at > ${NOW_MS} AS alive FROM hubs ORDER BY started_at, id`)).rows.map(toHub);
  }

  async removeHub(id: string): Promise<void> {
    await this.tx(async (q) => {
      await q('DELETE FROM presence WHERE hub = $1', [id]);
      await q('DELETE FROM hubs WHERE id = $1', [id]);
    });
  }

  async setPresence(agent: string, hub: string, since: number): Promise<void> {
    await this.query('INSERT INTO presence (agent, hub, since) VALUES ($1,$2,$3) ON CONFLICT (agent) DO UPDATE SET hub = EXCLUDED.hub, since = EXCLUDED.since', [agent, hub, since]);
  }

  async clearPresence(agent: string, hub: string): Promise<void> {
    await this.query('DELETE FROM presence WHERE agent = $1 AND hub = $2', [agent, hub]);
  }

  async listPresence(agent?: string): Promise<PresenceRecord[]> {
    const r = agent === undefined ? await this.query('SELECT * FROM presence ORDER BY agent') : await this.query('SELECT * FROM presence WHERE agent = $1', [agent]);
    return r.rows.map(toPresence);
  }

  async notify(payload: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
  }

  listen(fn: (payload: string | null) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Opens the LISTEN connection; after a loss, retries with backoff and then reports a possible gap. */
  private async startListening(reconnect: boolean): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const client = new pg.Client({ connectionString: this.connectionString, keepAlive: true, connectionTimeoutMillis: 5_000 });
      this.listener = client;
      let lost = false;
      const onLost = (err?: Error) => {
        if (lost) return;
        lost = true;
        if (this.closed) return;
        if (err) this.outage(err);
        void client.end().catch(() => {});
        void this.startListening(true);
      };
      client.on('notification', (m) => {
        if (m.channel === CHANNEL) for (const fn of this.listeners) fn(m.payload ?? '');
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANNEL}`);
        client.on('error', onLost);
        client.on('end', () => onLost());
        if (reconnect) for (const fn of this.listeners) fn(null);
        return;
      } catch (err) {
        client.on('error', () => {});
        void client.end().catch(() => {});
        this.outage(err as Error);
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1_000)));
      }
    }
  }

  async createJoinToken(t: JoinTokenRecord): Promise<void> {
    await this.query(
      'INSERT INTO join_tokens (id, secret_hash, expires_at, max_uses, used, labels, created_at, created_by, authority) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)',
      [t.id, t.secretHash, t.expiresAt, t.maxUses, t.used, json(t.labels), t.createdAt, t.createdBy, json(t.authority)],
    );
  }

  async getJoinToken(id: string): Promise<JoinTokenRecord | undefined> {
    const row = (await this.query('SELECT * FROM join_tokens WHERE id = $1', [id])).rows[0];
    return row && toJoinToken(row);
  }

  /** The token's row is locked (FOR UPDATE) until the use is counted: hubs racing one token take turns. */
  async enrollAgent(tokenId: string, build: (t: JoinTokenRecord | undefined) => AgentRecord): Promise<boolean> {
    return this.tx(async (q) => {
      const row = (await q('SELECT * FROM join_tokens WHERE id = $1 FOR UPDATE', [tokenId])).rows[0];
      const a = build(row && toJoinToken(row));
      const inserted = await q(
        'INSERT INTO agents (name, cert_serial, cert_expires_at, labels, created_at, meta, last_seen, authority) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING',
        [a.name, a.certSerial, a.certExpiresAt, json(a.labels), a.createdAt, json(a.meta), a.lastSeen, json(a.authority)],
      );
      if (inserted.rowCount === 0) return false;
      await q('UPDATE join_tokens SET used = used + 1 WHERE id = $1', [tokenId]);
      return true;
    });
  }

  async listJoinTokens(): Promise<JoinTokenRecord[]> {
    return (await this.query('SELECT * FROM join_tokens ORDER BY created_at, id')).rows.map(toJoinToken);
  }

  async deleteJoinToken(id: string): Promise<boolean> {
    return ((await this.query('DELETE FROM join_tokens WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async getAgent(name: string): Promise<AgentRecord | undefined> {
    const row = (await this.query('SELECT * FROM agents WHERE name = $1', [name])).rows[0];
    return row && toAgent(row);
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.query('SELECT * FROM agents ORDER BY name')).rows.map(toAgent);
  }

  async updateAgentCert(name: string, oldSerial: string, serial: string, expiresAt: number): Promise<boolean> {
    const r = await this.query('UPDATE agents SET cert_serial = $1, cert_expires_at = $2 WHERE name = $3 AND cert_serial = $4', [serial, expiresAt, name, oldSerial]);
    return (r.rowCount ?? 0) > 0;
  }

  async updateAgentSeen(name: string, meta: AgentMeta, lastSeen: number): Promise<void> {
    await this.query('UPDATE agents SET meta = $1, last_seen = $2 WHERE name = $3', [json(meta), lastSeen, name]);
  }

  async deleteAgent(name: string): Promise<boolean> {
    return ((await this.query('DELETE FROM agents WHERE name = $1', [name])).rowCount ?? 0) > 0;
  }

  async createGrant(g: GrantRecord): Promise<void> {
    await this.query(
      'INSERT INTO grants (id, subject_kind, subject, agent, host, ports, cluster, kube_groups, created_at, created_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)',
      [g.id, g.subjectKind, g.subject, g.agent, g.host, g.ports, g.cluster, json(g.kubeGroups), g.createdAt, g.createdBy],
    );
  }

  async listGrants(): Promise<GrantRecord[]> {
    return (await this.query('SELECT * FROM grants ORDER BY created_at, id')).rows.map(toGrant);
  }

  async deleteGrant(id: string): Promise<boolean> {
    return ((await this.query('DELETE FROM grants WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async createAccessToken(t: AccessTokenRecord): Promise<void> {
    await this.query(
      'INSERT INTO access_tokens (id, "user", groups, expires_at, created_at, created_by, revoked_at) VALUES ($1,$2,$3,$4,$5,$6,$7)',
      [t.id, t.user, json(t.groups), t.expiresAt, t.createdAt, t.createdBy, t.revokedAt],
    );
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = (await this.query('SELECT * FROM access_tokens WHERE id = $1', [id])).rows[0];
    return row && toAccessToken(row);
  }

  async listAccessTokens(): Promise<AccessTokenRecord[]> {
    return (await this.query('SELECT * FROM access_tokens ORDER BY created_at, id')).rows.map(toAccessToken);
  }

  async revokeAccessToken(id: string, now: number): Promise<boolean> {
    return ((await this.query('UPDATE access_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now, id])).rowCount ?? 0) > 0;
  }

  async createForward(f: ForwardRecord): Promise<boolean> {
    return (((await this.query(INSERT_FORWARD, forwardValues(f))).rowCount ?? 0) > 0);
  }

  async putExternalService(service: ExternalServiceRecord, owner: string, forwards: readonly ForwardRecord[]): Promise<void> {
    await this.tx(async (q) => {
      await q('DELETE FROM forwards WHERE owner = $1', [owner]);
      for (const f of forwards) {
        if (((await q(INSERT_FORWARD, forwardValues({ ...f, owner }))).rowCount ?? 0) === 0) throw new Error(`forward "${f.name}" exists`);
      }
      await q(
        `INSERT INTO external_services (name, manifest, created_at, created_by) VALUES ($1,$2,$3,$4)
         ON CONFLICT (name) DO UPDATE SET manifest = EXCLUDED.manifest, created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by`,
        [service.name, json(service.manifest), service.createdAt, service.createdBy],
      );
    });
  }

  async listExternalServices(): Promise<ExternalServiceRecord[]> {
    return (await this.query('SELECT * FROM external_services ORDER BY name')).rows.map(toExternalService);
  }

  async deleteExternalService(name: string, owner: string): Promise<boolean> {
    return this.tx(async (q) => {
      await q('DELETE FROM forwards WHERE owner = $1', [owner]);
      return ((await q('DELETE FROM external_services WHERE name = $1', [name])).rowCount ?? 0) > 0;
    });
  }

  async listForwards(): Promise<ForwardRecord[]> {
    return (await this.query('SELECT * FROM forwards ORDER BY name')).rows.map(toForward);
  }

  async updateForwardPort(name: string, port: number): Promise<void> {
    await this.query('UPDATE forwards SET entry_port = $1 WHERE name = $2', [port, name]);
  }

  async deleteForward(name: string): Promise<boolean> {
    return ((await this.query('DELETE FROM forwards WHERE name = $1', [name])).rowCount ?? 0) > 0;
  }

  async appendAudit(rows: readonly AuditRow[]): Promise<number[]> {
    if (rows.length === 0) return [];
    const columns = AUDIT_COLUMNS.map((c) => (c === 'user' ? '"user"' : c)).join(', ');
    const n = AUDIT_COLUMNS.length;
    return this.tx(async (q) => {
      const ids: number[] = [];
      // One INSERT per chunk of rows rather than per row: each statement is a round trip to the server.
      for (let at = 0; at < rows.length; at += AUDIT_ROWS_PER_INSERT) {
        const chunk = rows.slice(at, at + AUDIT_ROWS_PER_INSERT);
        const values = chunk.map((_, r) => `(${AUDIT_COLUMNS.map((_, c) => `$${r * n + c + 1}`).join(',')})`).join(',');
        const inserted = await q(`INSERT INTO audit (${columns}) VALUES ${values} RETURNING id`, chunk.flatMap(auditValues));
        // The ids are drawn in the order of the VALUES list; RETURNING's order is not a documented promise.
        ids.push(...inserted.rows.map((row) => Number(row.id)).sort((a, b) => a - b));
      }
      return ids;
    });
  }

  async queryAudit(f: AuditFilter): Promise<Array<AuditRow & { id: number }>> {
    const where: string[] = [];
    const args: unknown[] = [];
    const filters: Array<[string, unknown]> = [['time >= ', f.since], ['id > ', f.afterId], ['"user" = ', f.user], ['agent = ', f.agent], ['kind = ', f.kind]];
    for (const [clause, value] of filters) {
      if (value === undefined) continue;
      args.push(value);
      where.push(`${clause}$${args.length}`);
    }
    args.push(f.limit ?? 1000);
    // The newest rows, oldest first (like `tail`): a follower's backlog must end at the live edge.
    const sql = `SELECT * FROM (SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT $${args.length}) newest ORDER BY id`;
    return (await this.query(sql, args)).rows.map(toAudit);
  }
}

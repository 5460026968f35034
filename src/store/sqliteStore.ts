/**
 * The embedded store: one SQLite file, WAL mode, versioned migrations applied at open.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import type {
  AccessTokenRecord, AgentMeta, AgentRecord, AuditFilter, AuditRow, ExternalServiceRecord, ForwardRecord, GrantRecord, HubRecord, JoinTokenRecord,
  PresenceRecord, Store,
} from './store.js';
import { MIGRATIONS, newerSchemaError } from './migrations.js';
import {
  AUDIT_COLUMNS, auditValues, FORWARD_COLUMNS, forwardValues, json, type Row, toAccessToken, toAgent, toAudit, toExternalService, toForward, toGrant,
  toHub, toJoinToken, toPresence,
} from './rows.js';

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** Prepared once per SQL text: preparing costs more than running most of these statements. */
  private readonly statements = new Map<string, Database.Statement>();
  /** One SQLite file has one hub: notifications stay in this process. */
  private readonly changes = new EventEmitter().setMaxListeners(0);

  constructor(path: string) {
    // Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files the database
    // file's mode, and would otherwise create all three with the umask's (0644 under umask 022).
    fs.closeSync(fs.openSync(path, 'a', 0o600));
    for (const file of [path, `${path}-wal`, `${path}-shm`]) if (fs.existsSync(file)) fs.chmodSync(file, 0o600);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    // SQLite's own default page cache (2 MB) rather than the 16 MB better-sqlite3 builds in: the hub
    // reads grants and tokens from memory (src/hub/policyCache.ts), and most pages it writes are audit
    // rows written once. With 16 MB the cache filled with them: 100,000 streams grew the hub's RSS by
    // 13 MiB (~130 bytes a stream) before it levelled off (docs/reliability.md).
    this.db.pragma('cache_size = -2000');
    this.migrate();
  }

  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) this.statements.set(text, (st = this.db.prepare(text)));
    return st;
  }

  /** Applies every migration newer than the file's `user_version`, each in its own transaction. */
  private migrate(): void {
    const current = Number(this.db.pragma('user_version', { simple: true }));
    if (current > MIGRATIONS.length) throw newerSchemaError(current);
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!.sqlite);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  async ping(): Promise<void> {
    this.sql('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async createJoinToken(t: JoinTokenRecord): Promise<void> {
    this.sql('INSERT INTO join_tokens (id, secret_hash, expires_at, max_uses, used, labels, created_at, created_by, authority) VALUES (?,?,?,?,?,?,?,?,?)')
      .run(t.id, t.secretHash, t.expiresAt, t.maxUses, t.used, json(t.labels), t.createdAt, t.createdBy, json(t.authority));
  }

  async getJoinToken(id: string): Promise<JoinTokenRecord | undefined> {
    const row = this.sql('SELECT * FROM join_tokens WHERE id = ?').get(id) as Row | undefined;
    return row && toJoinToken(row);
  }

  async enrollAgent(tokenId: string, build: (t: JoinTokenRecord | undefined) => AgentRecord): Promise<boolean> {
    return this.db.transaction((): boolean => {
      const row = this.sql('SELECT * FROM join_tokens WHERE id = ?').get(tokenId) as Row | undefined;
      if (!this.insertAgent(build(row && toJoinToken(row)))) return false;
      this.sql('UPDATE join_tokens SET used = used + 1 WHERE id = ?').run(tokenId);
      return true;
    }).immediate();
  }

  async listJoinTokens(): Promise<JoinTokenRecord[]> {
    return (this.sql('SELECT * FROM join_tokens ORDER BY created_at').all() as Row[]).map(toJoinToken);
  }

  async deleteJoinToken(id: string): Promise<boolean> {
    return this.sql('DELETE FROM join_tokens WHERE id = ?').run(id).changes > 0;
  }

  async getAgent(name: string): Promise<AgentRecord | undefined> {
    const row = this.sql('SELECT * FROM agents WHERE name = ?').get(name) as Row | undefined;
    return row && toAgent(row);
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (this.sql('SELECT * FROM agents ORDER BY name').all() as Row[]).map(toAgent);
  }

  /** False when the name is taken. */
  private insertAgent(a: AgentRecord): boolean {
    const sql = 'INSERT OR IGNORE INTO agents (name, cert_serial, cert_expires_at, labels, created_at, meta, last_seen, authority) VALUES (?,?,?,?,?,?,?,?)';
    return (
      this.sql(sql).run(a.name, a.certSerial, a.certExpiresAt, json(a.labels), a.createdAt, json(a.meta), a.lastSeen, json(a.authority)).changes > 0
    );
  }

  async updateAgentCert(name: string, oldSerial: string, serial: string, expiresAt: number): Promise<boolean> {
    return (
      this.sql('UPDATE agents SET cert_serial = ?, cert_expires_at = ? WHERE name = ? AND cert_serial = ?')
        .run(serial, expiresAt, name, oldSerial).changes > 0
    );
  }

  async updateAgentSeen(name: string, meta: AgentMeta, lastSeen: number): Promise<void> {
    this.sql('UPDATE agents SET meta = ?, last_seen = ? WHERE name = ?').run(json(meta), lastSeen, name);
  }

  async deleteAgent(name: string): Promise<boolean> {
    return this.sql('DELETE FROM agents WHERE name = ?').run(name).changes > 0;
  }

  async createGrant(g: GrantRecord): Promise<void> {
    this.sql('INSERT INTO grants VALUES (?,?,?,?,?,?,?,?,?,?)')
      .run(g.id, g.subjectKind, g.subject, g.agent, g.host, g.ports, g.cluster, json(g.kubeGroups), g.createdAt, g.createdBy);
  }

  async listGrants(): Promise<GrantRecord[]> {
    return (this.sql('SELECT * FROM grants ORDER BY created_at, id').all() as Row[]).map(toGrant);
  }

  async deleteGrant(id: string): Promise<boolean> {
    return this.sql('DELETE FROM grants WHERE id = ?').run(id).changes > 0;
  }

  async createAccessToken(t: AccessTokenRecord): Promise<void> {
    this.sql('INSERT INTO access_tokens VALUES (?,?,?,?,?,?,?)')
      .run(t.id, t.user, json(t.groups), t.expiresAt, t.createdAt, t.createdBy, t.revokedAt);
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const row = this.sql('SELECT * FROM access_tokens WHERE id = ?').get(id) as Row | undefined;
    return row && toAccessToken(row);
  }

  async listAccessTokens(): Promise<AccessTokenRecord[]> {
    return (this.sql('SELECT * FROM access_tokens ORDER BY created_at').all() as Row[]).map(toAccessToken);
  }

  async revokeAccessToken(id: string, now: number): Promise<boolean> {
    return this.sql('UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0;
  }

  async createForward(f: ForwardRecord): Promise<boolean> {
    return this.insertForward(f);
  }

  private insertForward(f: ForwardRecord): boolean {
    const sql = `INSERT OR IGNORE INTO forwards (${FORWARD_COLUMNS.join(', ')}) VALUES (${FORWARD_COLUMNS.map(() => '?').join(',')})`;
    return this.sql(sql).run(...forwardValues(f)).changes > 0;
  }

  async putExternalService(service: ExternalServiceRecord, owner: string, forwards: readonly ForwardRecord[]): Promise<void> {
    this.db.transaction(() => {
      this.sql('DELETE FROM forwards WHERE owner = ?').run(owner);
      for (const f of forwards) {
        if (!this.insertForward({ ...f, owner })) throw new Error(`forward "${f.name}" exists`);
      }
      this.sql('INSERT OR REPLACE INTO external_services (name, manifest, created_at, created_by) VALUES (?,?,?,?)')
        .run(service.name, json(service.manifest), service.createdAt, service.createdBy);
    })();
  }

  async listExternalServices(): Promise<ExternalServiceRecord[]> {
    return (this.sql('SELECT * FROM external_services ORDER BY name').all() as Row[]).map(toExternalService);
  }

  async deleteExternalService(name: string, owner: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.sql('DELETE FROM forwards WHERE owner = ?').run(owner);
      return this.sql('DELETE FROM external_services WHERE name = ?').run(name).changes > 0;
    })();
  }

  async listForwards(): Promise<ForwardRecord[]> {
    return (this.sql('SELECT * FROM forwards ORDER BY name').all() as Row[]).map(toForward);
  }

  async updateForwardPort(name: string, port: number): Promise<void> {
    this.sql('UPDATE forwards SET entry_port = ? WHERE name = ?').run(port, name);
  }

  async deleteForward(name: string): Promise<boolean> {
    return this.sql('DELETE FROM forwards WHERE name = ?').run(name).changes > 0;
  }

  async renewHub(h: Pick<HubRecord, 'id' | 'relayUrl' | 'startedAt'>, leaseMs: number): Promise<void> {
    this.sql(
      `INSERT INTO hubs (id, relay_url, started_at, lease_expires_at) VALUES (?,?,?,?)
       ON CONFLICT (id) DO UPDATE SET relay_url = excluded.relay_url, lease_expires_at = excluded.lease_expires_at`,
    ).run(h.id, h.relayUrl, h.startedAt, Date.now() + leaseMs);
  }

  async listHubs(): Promise<HubRecord[]> {
    const rows = this.sql('SELECT *, lease_expires_at > ? AS alive FROM hubs ORDER BY started_at, id').all(Date.now()) as Row[];
    return rows.map(toHub);
  }

  async removeHub(id: string): Promise<void> {
    this.db.transaction(() => {
      this.sql('DELETE FROM presence WHERE hub = ?').run(id);
      this.sql('DELETE FROM hubs WHERE id = ?').run(id);
    })();
  }

  async setPresence(agent: string, hub: string, since: number): Promise<void> {
    this.sql('INSERT INTO presence (agent, hub, since) VALUES (?,?,?) ON CONFLICT (agent) DO UPDATE SET hub = excluded.hub, since = excluded.since')
      .run(agent, hub, since);
  }

  async clearPresence(agent: string, hub: string): Promise<void> {
    this.sql('DELETE FROM presence WHERE agent = ? AND hub = ?').run(agent, hub);
  }

  async listPresence(agent?: string): Promise<PresenceRecord[]> {
    const rows = agent === undefined ? this.sql('SELECT * FROM presence ORDER BY agent').all() : this.sql('SELECT * FROM presence WHERE agent = ?').all(agent);
    return (rows as Row[]).map(toPresence);
  }

  async notify(payload: string): Promise<void> {
    setImmediate(() => this.changes.emit('change', payload));
  }

  listen(fn: (payload: string | null) => void): () => void {
    this.changes.on('change', fn);
    return () => this.changes.off('change', fn);
  }

  async appendAudit(rows: readonly AuditRow[]): Promise<number[]> {
    const insert = this.sql(`INSERT INTO audit (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(',')})`);
    return this.db.transaction(() => rows.map((r) => Number(insert.run(...auditValues(r)).lastInsertRowid)))();
  }

  async queryAudit(f: AuditFilter): Promise<Array<AuditRow & { id: number }>> {
    const where: string[] = [];
    const args: unknown[] = [];
    const filters: Array<[string, unknown]> = [['time >= ?', f.since], ['id > ?', f.afterId], ['user = ?', f.user], ['agent = ?', f.agent], ['kind = ?', f.kind]];
    for (const [clause, value] of filters) {
      if (value === undefined) continue;
      where.push(clause);
      args.push(value);
    }
    // The newest rows, oldest first (like `tail`): a follower's backlog must end at the live edge.
    const sql = `SELECT * FROM (SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?) ORDER BY id`;
    return (this.sql(sql).all(...args, f.limit ?? 1000) as Row[]).map(toAudit);
  }
}

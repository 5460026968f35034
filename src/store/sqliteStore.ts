/**
 * The embedded store: one SQLite file, WAL mode, versioned migrations applied at open.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import type {
  AccessTokenRecord, AgentAuthority, AgentMeta, AgentRecord, AuditFilter, AuditRow, ExternalServiceRecord, ForwardKind, ForwardRecord, GrantRecord,
  JoinTokenRecord, Store,
} from './store.js';

/** Append-only: a released migration is never edited, a new one is added. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE join_tokens (
     id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL, expires_at INTEGER NOT NULL, max_uses INTEGER,
     used INTEGER NOT NULL DEFAULT 0, labels TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
   CREATE TABLE agents (
     name TEXT PRIMARY KEY, cert_serial TEXT NOT NULL, cert_expires_at INTEGER NOT NULL, labels TEXT NOT NULL,
     created_at INTEGER NOT NULL, meta TEXT NOT NULL, last_seen INTEGER);
   CREATE TABLE grants (
     id TEXT PRIMARY KEY, subject_kind TEXT NOT NULL, subject TEXT NOT NULL, agent TEXT, host TEXT, ports TEXT,
     cluster TEXT, kube_groups TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
   CREATE TABLE access_tokens (
     id TEXT PRIMARY KEY, user TEXT NOT NULL, groups TEXT NOT NULL, expires_at INTEGER, created_at INTEGER NOT NULL,
     created_by TEXT NOT NULL, revoked_at INTEGER);
   CREATE TABLE audit (
     id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL, user TEXT, door TEXT, agent TEXT,
     target TEXT, result TEXT NOT NULL, reason TEXT, bytes_in INTEGER, bytes_out INTEGER, duration_ms INTEGER, source TEXT);
   CREATE INDEX audit_time ON audit(time);`,
  `CREATE TABLE forwards (
     name TEXT PRIMARY KEY, entry_agent TEXT, entry_host TEXT NOT NULL, entry_port INTEGER NOT NULL, target TEXT NOT NULL,
     allow_from TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);`,
  // Agent authority (what a join token lets an agent claim). Tokens and agents from before it get none:
  // a free name and no clusters or routes, so an upgraded hub refuses their cluster and route claims
  // until the admin re-joins them with a token that grants those (warren join-token create --clusters
  // / --routes, after warren agents rm NAME).
  `ALTER TABLE join_tokens ADD COLUMN authority TEXT NOT NULL DEFAULT '{"clusters":[],"routes":[]}';
   ALTER TABLE agents ADD COLUMN authority TEXT NOT NULL DEFAULT '{"clusters":[],"routes":[]}';`,
  // Kube requests' verb, resource, namespace, name and status as columns (they were packed into reason).
  `ALTER TABLE audit ADD COLUMN verb TEXT;
   ALTER TABLE audit ADD COLUMN resource TEXT;
   ALTER TABLE audit ADD COLUMN namespace TEXT;
   ALTER TABLE audit ADD COLUMN name TEXT;
   ALTER TABLE audit ADD COLUMN status INTEGER;`,
  // Egress and ingress rules are forwards of another kind (design §6); ExternalService objects own theirs.
  `ALTER TABLE forwards ADD COLUMN kind TEXT NOT NULL DEFAULT 'forward';
   ALTER TABLE forwards ADD COLUMN gateway TEXT;
   ALTER TABLE forwards ADD COLUMN source_ip TEXT;
   ALTER TABLE forwards ADD COLUMN owner TEXT;
   CREATE TABLE external_services (
     name TEXT PRIMARY KEY, manifest TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);`,
];

/** The schema version a fresh store is at (one per migration). */
export const SCHEMA_VERSION = MIGRATIONS.length;

type Row = Record<string, unknown>;

const json = (v: unknown) => JSON.stringify(v);
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- each column's reader names the JSON shape it stored
const parse = <T>(v: unknown): T => JSON.parse(String(v)) as T;
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function toJoinToken(r: Row): JoinTokenRecord {
  return {
    id: String(r.id), secretHash: r.secret_hash as Buffer, expiresAt: Number(r.expires_at), maxUses: num(r.max_uses),
    used: Number(r.used), labels: parse(r.labels), authority: parse<AgentAuthority>(r.authority), createdAt: Number(r.created_at),
    createdBy: String(r.created_by),
  };
}

function toAgent(r: Row): AgentRecord {
  return {
    name: String(r.name), certSerial: String(r.cert_serial), certExpiresAt: Number(r.cert_expires_at), labels: parse(r.labels),
    authority: parse<AgentAuthority>(r.authority), createdAt: Number(r.created_at), meta: parse<AgentMeta>(r.meta), lastSeen: num(r.last_seen),
  };
}

function toGrant(r: Row): GrantRecord {
  return {
    id: String(r.id), subjectKind: r.subject_kind as GrantRecord['subjectKind'], subject: String(r.subject),
    agent: (r.agent as string | null) ?? null, host: (r.host as string | null) ?? null, ports: (r.ports as string | null) ?? null,
    cluster: (r.cluster as string | null) ?? null, kubeGroups: parse(r.kube_groups), createdAt: Number(r.created_at),
    createdBy: String(r.created_by),
  };
}

function toAccessToken(r: Row): AccessTokenRecord {
  return {
    id: String(r.id), user: String(r.user), groups: parse(r.groups), expiresAt: num(r.expires_at), createdAt: Number(r.created_at),
    createdBy: String(r.created_by), revokedAt: num(r.revoked_at),
  };
}

function toForward(r: Row): ForwardRecord {
  return {
    name: String(r.name), entryAgent: (r.entry_agent as string | null) ?? null, entryHost: String(r.entry_host), entryPort: Number(r.entry_port),
    target: String(r.target), allowFrom: parse(r.allow_from), createdAt: Number(r.created_at), createdBy: String(r.created_by),
    kind: r.kind as ForwardKind, gateway: (r.gateway as string | null) ?? null, sourceIp: (r.source_ip as string | null) ?? null,
    owner: (r.owner as string | null) ?? null,
  };
}

function toAudit(r: Row): AuditRow & { id: number } {
  return {
    id: Number(r.id), time: Number(r.time), kind: r.kind as AuditRow['kind'], user: (r.user as string | null) ?? null,
    door: (r.door as string | null) ?? null, agent: (r.agent as string | null) ?? null, target: (r.target as string | null) ?? null,
    result: r.result as AuditRow['result'], reason: (r.reason as string | null) ?? null, bytesIn: num(r.bytes_in),
    bytesOut: num(r.bytes_out), durationMs: num(r.duration_ms), source: (r.source as string | null) ?? null,
    verb: (r.verb as string | null) ?? null, resource: (r.resource as string | null) ?? null, namespace: (r.namespace as string | null) ?? null,
    name: (r.name as string | null) ?? null, status: num(r.status),
  };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** Prepared once per SQL text: preparing costs more than running most of these statements. */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(path: string) {
    // Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files the database
    // file's mode, and would otherwise create all three with the umask's (0644 under umask 022).
    fs.closeSync(fs.openSync(path, 'a', 0o600));
    for (const file of [path, `${path}-wal`, `${path}-shm`]) if (fs.existsSync(file)) fs.chmodSync(file, 0o600);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
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
    if (current > MIGRATIONS.length) {
      throw new Error(`store schema version ${current} is newer than this Warren (${MIGRATIONS.length}); upgrade Warren`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
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
    return this.insertForward(f, 'INSERT OR IGNORE');
  }

  private insertForward(f: ForwardRecord, verb: 'INSERT' | 'INSERT OR IGNORE'): boolean {
    const sql = `${verb} INTO forwards (name, entry_agent, entry_host, entry_port, target, allow_from, created_at, created_by, kind, gateway, source_ip, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`;
    return (
      this.sql(sql).run(
        f.name, f.entryAgent, f.entryHost, f.entryPort, f.target, json(f.allowFrom), f.createdAt, f.createdBy, f.kind ?? 'forward', f.gateway ?? null,
        f.sourceIp ?? null, f.owner ?? null,
      ).changes > 0
    );
  }

  async putExternalService(service: ExternalServiceRecord, owner: string, forwards: readonly ForwardRecord[]): Promise<void> {
    this.db.transaction(() => {
      this.sql('DELETE FROM forwards WHERE owner = ?').run(owner);
      for (const f of forwards) {
        if (!this.insertForward({ ...f, owner }, 'INSERT OR IGNORE')) throw new Error(`forward "${f.name}" exists`);
      }
      this.sql('INSERT OR REPLACE INTO external_services (name, manifest, created_at, created_by) VALUES (?,?,?,?)')
        .run(service.name, json(service.manifest), service.createdAt, service.createdBy);
    })();
  }

  async listExternalServices(): Promise<ExternalServiceRecord[]> {
    return (this.sql('SELECT * FROM external_services ORDER BY name').all() as Row[]).map((r) => ({
      name: String(r.name), manifest: parse(r.manifest), createdAt: Number(r.created_at), createdBy: String(r.created_by),
    }));
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

  async appendAudit(rows: readonly AuditRow[]): Promise<number[]> {
    const insert = this.sql(
      'INSERT INTO audit (time, kind, user, door, agent, target, result, reason, bytes_in, bytes_out, duration_ms, source, verb, resource, namespace, name, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
    );
    return this.db.transaction(() =>
      rows.map((r) =>
        Number(
          insert.run(r.time, r.kind, r.user, r.door, r.agent, r.target, r.result, r.reason, r.bytesIn, r.bytesOut, r.durationMs, r.source, r.verb, r.resource, r.namespace, r.name, r.status)
            .lastInsertRowid,
        ),
      ),
    )();
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

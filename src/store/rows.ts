/**
 * Row → record mappers shared by both stores: column names are the same in both dialects, JSON
 * columns are TEXT in both, and numbers are read with Number() (PostgreSQL returns BIGINT as a string).
 */
import type {
  AccessTokenRecord, AgentAuthority, AgentMeta, AgentRecord, AuditRow, ExternalServiceRecord, ForwardKind, ForwardRecord, GrantRecord, HubRecord,
  JoinTokenRecord, PresenceRecord,
} from './store.js';

export type Row = Record<string, unknown>;

export const json = (v: unknown): string => JSON.stringify(v);
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- each column's reader names the JSON shape it stored
const parse = <T>(v: unknown): T => JSON.parse(String(v)) as T;
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const text = (v: unknown) => (v as string | null | undefined) ?? null;

export function toJoinToken(r: Row): JoinTokenRecord {
  return {
    id: String(r.id), secretHash: r.secret_hash as Buffer, expiresAt: Number(r.expires_at), maxUses: num(r.max_uses),
    used: Number(r.used), labels: parse(r.labels), authority: parse<AgentAuthority>(r.authority), createdAt: Number(r.created_at),
    createdBy: String(r.created_by),
  };
}

export function toAgent(r: Row): AgentRecord {
  return {
    name: String(r.name), certSerial: String(r.cert_serial), certExpiresAt: Number(r.cert_expires_at), labels: parse(r.labels),
    authority: parse<AgentAuthority>(r.authority), createdAt: Number(r.created_at), meta: parse<AgentMeta>(r.meta), lastSeen: num(r.last_seen),
  };
}

export function toGrant(r: Row): GrantRecord {
  return {
    id: String(r.id), subjectKind: r.subject_kind as GrantRecord['subjectKind'], subject: String(r.subject),
    agent: text(r.agent), host: text(r.host), ports: text(r.ports), cluster: text(r.cluster), kubeGroups: parse(r.kube_groups),
    createdAt: Number(r.created_at), createdBy: String(r.created_by),
  };
}

export function toAccessToken(r: Row): AccessTokenRecord {
  return {
    id: String(r.id), user: String(r.user), groups: parse(r.groups), expiresAt: num(r.expires_at), createdAt: Number(r.created_at),
    createdBy: String(r.created_by), revokedAt: num(r.revoked_at),
  };
}

export function toForward(r: Row): ForwardRecord {
  return {
    name: String(r.name), entryAgent: text(r.entry_agent), entryHost: String(r.entry_host), entryPort: Number(r.entry_port),
    target: String(r.target), allowFrom: parse(r.allow_from), createdAt: Number(r.created_at), createdBy: String(r.created_by),
    kind: r.kind as ForwardKind, gateway: text(r.gateway), sourceIp: text(r.source_ip), owner: text(r.owner),
  };
}

/** The forward columns in insert order, and a record's values in that order (both stores insert with these). */
export const FORWARD_COLUMNS = [
  'name', 'entry_agent', 'entry_host', 'entry_port', 'target', 'allow_from', 'created_at', 'created_by', 'kind', 'gateway', 'source_ip', 'owner',
] as const;

export function forwardValues(f: ForwardRecord): unknown[] {
  return [
    f.name, f.entryAgent, f.entryHost, f.entryPort, f.target, json(f.allowFrom), f.createdAt, f.createdBy, f.kind ?? 'forward', f.gateway ?? null,
    f.sourceIp ?? null, f.owner ?? null,
  ];
}

export function toExternalService(r: Row): ExternalServiceRecord {
  return { name: String(r.name), manifest: parse(r.manifest), createdAt: Number(r.created_at), createdBy: String(r.created_by) };
}

export function toHub(r: Row): HubRecord {
  return {
    id: String(r.id), relayUrl: String(r.relay_url), startedAt: Number(r.started_at), leaseExpiresAt: Number(r.lease_expires_at),
    alive: r.alive === true || r.alive === 1,
  };
}

export function toPresence(r: Row): PresenceRecord {
  return { agent: String(r.agent), hub: String(r.hub), since: Number(r.since) };
}

export function toAudit(r: Row): AuditRow & { id: number } {
  return {
    id: Number(r.id), time: Number(r.time), kind: r.kind as AuditRow['kind'], user: text(r.user), door: text(r.door), agent: text(r.agent),
    target: text(r.target), result: r.result as AuditRow['result'], reason: text(r.reason), bytesIn: num(r.bytes_in),
    bytesOut: num(r.bytes_out), durationMs: num(r.duration_ms), source: text(r.source), verb: text(r.verb), resource: text(r.resource),
    namespace: text(r.namespace), name: text(r.name), status: num(r.status),
  };
}

/** The audit columns in insert order, and a row's values in that order (both stores insert with these). */
export const AUDIT_COLUMNS = [
  'time', 'kind', 'user', 'door', 'agent', 'target', 'result', 'reason', 'bytes_in', 'bytes_out', 'duration_ms', 'source', 'verb', 'resource',
  'namespace', 'name', 'status',
] as const;

export function auditValues(r: AuditRow): unknown[] {
  return [r.time, r.kind, r.user, r.door, r.agent, r.target, r.result, r.reason, r.bytesIn, r.bytesOut, r.durationMs, r.source, r.verb, r.resource, r.namespace, r.name, r.status];
}

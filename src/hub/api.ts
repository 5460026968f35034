/**
 * The admin REST API under /api/v1 (JSON in and out; errors as `{code, message}` with the status of
 * the code). Every route declares who may call it; admin changes are audited. The OpenAPI document at
 * /api/v1/openapi.json is generated from this same table.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { WarrenError } from '../shared/errors.js';
import { formatDuration, parseDuration } from '../shared/duration.js';
import { issueUserCert, type Ca } from '../pki/pki.js';
import { verifiedPeer } from '../tunnel/peerCertificate.js';
import type { Store, GrantRecord, AgentRecord } from '../store/store.js';
import type { Principal } from '../doors/door.js';
import { AccessTokens, isAdmin } from './accessTokens.js';
import type { HubAuth } from './auth.js';
import type { AgentTunnels } from './agentTunnels.js';
import type { Audit, AuditEntry } from './audit.js';
import type { Enrollment } from './enroll.js';
import type { Forwards } from './forwards.js';
import { forwardRoutes } from './forwardsApi.js';
import { egressRoutes } from './egressApi.js';
import type { ExternalServices } from './externalServices.js';
import { externalServiceRoutes } from './externalServicesApi.js';
import { sendError, sendJson } from './httpJson.js';
import { openapiDocument, route, type ApiRoute, type OpenApi, type RawCtx } from './apiRoute.js';
import * as S from './apiSchemas.js';
import { grantView } from './apiSchemas.js';
import { isRoute, parseCidr, parsePorts } from '../shared/patterns.js';
import { canonicalIp, formatSource, isLabel } from '../shared/hostPort.js';
import { explainFor } from './routeExplain.js';
import { judgedIdentity } from './judgedIdentity.js';
import { selfRoutes } from './selfApi.js';
import { describeAuthority } from './authority.js';
import type { FailureLog } from '../shared/failureLog.js';
import type { HubMesh } from './hubMesh.js';

export interface ApiDeps {
  readonly store: Store;
  readonly auth: HubAuth;
  readonly tokens: AccessTokens;
  readonly tunnels: AgentTunnels;
  readonly enrollment: Enrollment;
  readonly audit: Audit;
  readonly ca: Ca;
  readonly caPem: string;
  readonly version: string;
  /** The URL clients use for the hub, and its CA pin (`sha256:…`), for GET /api/v1/me. */
  readonly hubUrl: () => string;
  readonly caPin: string;
  /** TCP forwards (`warren forwards`); their routes are mounted when given. */
  readonly forwards?: Pick<Forwards, 'create' | 'list' | 'get' | 'remove'>;
  /** ExternalService objects (`warren apply`); their routes are mounted when given. */
  readonly externalServices?: Pick<ExternalServices, 'apply' | 'list' | 'get' | 'remove'>;
  /** The Kubernetes door's routes (GET /api/v1/clusters), mounted when given. */
  readonly kubeRoutes?: readonly ApiRoute[];
  /** The hubs sharing the store and where each agent's tunnel is (src/hub/hubMesh.ts). */
  readonly mesh?: Pick<HubMesh, 'list' | 'hubOf'>;
  /** Closes the open streams an admin change no longer allows (revocation is immediate). */
  readonly revoke?: (why: string) => Promise<unknown>;
  /** The longest TTL a user certificate may have (--max-user-cert-ttl): it cannot be revoked. */
  readonly maxUserCertTtlMs: number;
  /** Where a failed request that answers 5xx is logged (failureLog.ts). */
  readonly log: FailureLog;
}

const ANONYMOUS: Principal = { user: 'anonymous', groups: [], via: 'token' };

const labelsSchema = z.record(z.string().regex(/^[A-Za-z0-9._/-]{1,63}$/, 'label keys are letters, digits, . _ / -'), z.string().max(253)).default({});
const ttl = (what: string) =>
  z.string().refine((s) => (parseDuration(s) ?? 0) > 0, `${what} must be a duration like 30m, 8h, 7d`).transform((s) => parseDuration(s)!);
const nameSchema = z.string().min(1).max(253).regex(/^[A-Za-z0-9@._:-]+$/, 'use letters, digits and @ . _ : -');

/** What the token lets an agent claim (`warren join-token create --name|--name-pattern --clusters --routes --source-ips`). */
const joinTokenSchema = z
  .object({
    ttl: ttl('ttl').default(3_600_000),
    uses: z.number().int().min(1).max(1_000_000).nullable().default(1),
    labels: labelsSchema,
    name: z.string().refine(isLabel, 'name must be an RFC 1123 label (lower-case letters, digits, -)').optional(),
    namePattern: z.string().min(1).max(63).regex(/^[a-z0-9*?-]+$/, 'namePattern is a glob over agent names: a-z 0-9 - * ?').optional(),
    clusters: z.array(z.string().refine(isLabel, 'clusters are RFC 1123 labels')).max(100).default([]),
    routes: z.array(z.string().max(253).refine(isRoute, 'routes are CIDRs (10.20.0.0/16) or DNS suffixes (.corp.internal)')).max(1000).default([]),
    sourceIps: z.array(z.string().max(64).refine((ip) => net.isIP(ip) !== 0, 'sourceIps are IP addresses (10.9.0.5)').transform(canonicalIp)).max(1000).default([]),
  })
  .strict()
  .refine((b) => b.name === undefined || b.namePattern === undefined, { error: 'give name or namePattern, not both', path: ['namePattern'] });

const grantSchema = z
  .object({
    user: nameSchema.optional(),
    group: nameSchema.optional(),
    agent: z.string().min(1).max(253).optional(),
    host: z.string().min(1).max(253).optional(),
    ports: z.string().refine((p) => parsePorts(p) !== undefined, 'ports must look like 22,80,8000-8100').optional(),
    cluster: z.string().min(1).max(253).optional(),
    kubeGroups: z.array(nameSchema).max(50).default([]),
  })
  .strict()
  .superRefine((g, ctx) => {
    if (!g.user === !g.group) ctx.addIssue({ code: 'custom', message: 'give exactly one of user or group', path: ['user'] });
    if (!g.agent === !g.cluster) ctx.addIssue({ code: 'custom', message: 'give exactly one of agent (a target grant) or cluster (a cluster grant)', path: ['agent'] });
    if (g.cluster && (g.host || g.ports)) ctx.addIssue({ code: 'custom', message: 'host and ports go with agent, not cluster', path: ['host'] });
    if (g.agent && g.kubeGroups.length) ctx.addIssue({ code: 'custom', message: 'kubeGroups go with cluster, not agent', path: ['kubeGroups'] });
    if (g.host?.includes('/') && !parseCidr(g.host)) ctx.addIssue({ code: 'custom', message: 'host is neither a glob nor a valid CIDR', path: ['host'] });
  });

/** `GET /api/v1/audit` filters; `since` becomes epoch ms. */
const auditQuery = z.object({
  since: z
    .string()
    .transform((text, ctx) => {
      const rel = parseDuration(text);
      const ms = rel !== undefined ? Date.now() - rel : Date.parse(text);
      if (Number.isNaN(ms)) ctx.addIssue({ code: 'custom', message: 'give a duration (1h) or an ISO time' });
      return ms;
    })
    .optional()
    .describe('only rows newer than this: a duration (1h) or an ISO time'),
  user: z.string().optional().describe('only rows of this user'),
  agent: z.string().optional().describe('only rows through this agent'),
  kind: z.enum(['stream', 'kube', 'admin', 'agent', 'shell'], { error: 'must be stream, kube, admin, agent or shell' }).optional(),
  limit: z.coerce.number({ error: 'must be a whole number from 1 to 100000' }).int('must be a whole number from 1 to 100000').min(1, 'must be a whole number from 1 to 100000')
    .max(100_000, 'must be a whole number from 1 to 100000').default(1000).describe('at most this many rows, the newest'),
  follow: z.enum(['true', 'false']).optional().describe('true: stream NDJSON, one row a line, as rows are written'),
});

const explainQuery = z.object({
  target: z.string({ error: 'required: ?target=HOST:PORT' }).min(1, 'required: ?target=HOST:PORT').describe('HOST:PORT'),
  user: z.string().min(1).optional().describe('judge this user (default: the caller)'),
  groups: z.string().optional().describe("comma-separated groups, instead of those on the user's live tokens"),
});

export function auditView(r: AuditEntry) {
  return {
    id: r.id, time: new Date(r.time).toISOString(), kind: r.kind, user: r.user, door: r.door, agent: r.agent, target: r.target,
    result: r.result, reason: r.reason, bytesIn: r.bytesIn, bytesOut: r.bytesOut, durationMs: r.durationMs, source: r.source,
    ...(r.kind === 'kube' ? { verb: r.verb, resource: r.resource, namespace: r.namespace, name: r.name, status: r.status } : {}),
  };
}

export class Api {
  private readonly routes: Array<ApiRoute & { re: RegExp; keys: string[] }>;
  private document: OpenApi | undefined;

  constructor(private readonly deps: ApiDeps) {
    this.routes = this.table().map((r) => {
      const keys: string[] = [];
      const re = new RegExp('^' + r.path.replace(/:(\w+)/g, (_, k: string) => (keys.push(k), '([^/]+)')) + '$');
      return { ...r, re, keys };
    });
  }

  /** Handles a request under /api/v1; answers 404/405 for unknown paths and methods. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const candidates = this.routes.filter((r) => r.re.test(url.pathname));
      if (candidates.length === 0) throw new WarrenError('WARREN_E_NOT_FOUND', `no API endpoint ${url.pathname}`);
      const route = candidates.find((r) => r.method === req.method);
      if (!route) throw new WarrenError('WARREN_E_METHOD_NOT_ALLOWED', `${req.method} is not supported on ${url.pathname}; use ${candidates.map((r) => r.method).join(', ')}`);
      const m = route.re.exec(url.pathname)!;
      const params = Object.fromEntries(route.keys.map((k, i) => [k, decodePathParam(k, m[i + 1]!)]));
      let principal = ANONYMOUS;
      let agent: RawCtx['agent'];
      if (route.auth === 'agent') agent = agentFromCert(req);
      else if (route.auth !== 'none') {
        principal = await this.deps.auth.fromHttp(req.headers.authorization, req.socket, 'api');
        if (route.auth === 'admin' && !isAdmin(principal)) {
          throw new WarrenError('WARREN_E_FORBIDDEN', `user "${principal.user}" is not an admin (group warren:admins)`);
        }
      }
      const result = await route.run({ req, res, params, query: url.searchParams, principal, agent });
      if (!res.headersSent && !res.writableEnded) sendJson(res, route.status, result ?? {});
    } catch (err) {
      sendError(res, err, this.deps.log);
    }
  }

  private adminAudit(principal: Principal, target: string, reason: string): Promise<void> {
    return this.deps.audit.record({ kind: 'admin', result: 'ok', user: principal.user, door: 'api', target, reason });
  }

  private async agentView(a: AgentRecord) {
    const live = this.deps.tunnels.get(a.name);
    const hub = this.deps.mesh?.hubOf(a.name) ?? null;
    return {
      name: a.name,
      connected: Boolean(live) || hub !== null,
      labels: a.labels,
      // What the agent may claim; `clusters` and `routes` below are what it claims now (or last did).
      authority: a.authority,
      clusters: live?.info.clusters ?? a.meta.clusters ?? [],
      routes: live?.info.routes ?? a.meta.routes ?? [],
      version: live?.info.version ?? a.meta.version ?? null,
      hostname: live?.info.hostname ?? a.meta.hostname ?? null,
      allow: live?.info.allow ?? a.meta.allow ?? [],
      sourceIps: live?.info.sourceIps ?? a.meta.sourceIps ?? [],
      connectedAt: live ? live.connectedAt.toISOString() : null,
      lastSeen: live ? new Date().toISOString() : a.lastSeen ? new Date(a.lastSeen).toISOString() : null,
      rttMs: live?.rttMs ?? null,
      streamsOpen: live?.streamsOpen ?? 0,
      bytesIn: live?.bytesIn ?? 0,
      bytesOut: live?.bytesOut ?? 0,
      remoteAddress: live?.remoteAddress ?? null,
      certExpiresAt: new Date(a.certExpiresAt).toISOString(),
      hub,
    };
  }

  private table(): ApiRoute[] {
    const d = this.deps;
    const name = z.object({ name: z.string().describe('Agent name') });
    const id = z.object({ id: z.string() });
    return [
      route({
        method: 'GET', path: '/api/v1/ca', auth: 'none', summary: 'The hub CA certificate (PEM); clients check it against their pin.',
        response: z.string().describe('PEM'), produces: 'application/x-pem-file',
        handle: async ({ res }) => {
          res.writeHead(200, { 'content-type': 'application/x-pem-file' });
          res.end(d.caPem);
          return undefined;
        },
      }),
      route({
        method: 'GET', path: '/api/v1/version', auth: 'none', summary: 'The hub\'s Warren version (`warren version`).', response: S.Version,
        handle: async () => ({ version: d.version }),
      }),
      route({
        method: 'GET', path: '/api/v1/whoami', auth: 'user', summary: 'The caller as the hub sees it.', response: S.Whoami,
        handle: async ({ principal }) => ({ user: principal.user, groups: principal.groups, via: principal.via, admin: isAdmin(principal) }),
      }),
      route({
        method: 'POST', path: '/api/v1/join', auth: 'none', status: 201, summary: 'Exchange a join token and a CSR for an agent certificate.',
        body: z.object({ token: z.string().max(1024), name: z.string().max(253), csr: z.string().max(16384), labels: labelsSchema }).strict(),
        response: S.Joined,
        handle: async ({ req, body }) => {
          const out = await d.enrollment.join(body);
          await d.audit.record({ kind: 'agent', result: 'ok', agent: out.name, reason: 'joined with a join token', source: formatSource(req.socket) });
          d.tunnels.markKnown(out.name);
          return out;
        },
      }),
      route({
        method: 'POST', path: '/api/v1/renew', auth: 'agent', summary: 'Renew the calling agent certificate (mTLS with the current one).',
        body: z.object({ csr: z.string().max(16384) }).strict(), response: S.AgentCert,
        handle: async ({ agent, body }) => {
          const out = await d.enrollment.renew(agent!.name, agent!.serial, body.csr);
          await d.audit.record({ kind: 'agent', result: 'ok', agent: agent!.name, reason: 'certificate renewed' });
          return out;
        },
      }),
      route({
        method: 'POST', path: '/api/v1/join-tokens', auth: 'admin', status: 201,
        summary: 'Create a join token (ttl, uses, labels) and what it lets an agent claim (name or namePattern, clusters, routes, sourceIps).',
        body: joinTokenSchema, response: S.JoinTokenCreated,
        handle: async ({ body, principal }) => {
          const authority = {
            ...(body.name !== undefined ? { name: body.name } : {}), ...(body.namePattern !== undefined ? { namePattern: body.namePattern } : {}),
            clusters: body.clusters, routes: body.routes, ...(body.sourceIps.length ? { sourceIps: body.sourceIps } : {}),
          };
          const out = await d.enrollment.createJoinToken({ ttlMs: body.ttl, uses: body.uses, labels: body.labels, authority, createdBy: principal.user });
          await this.adminAudit(principal, `join-token/${out.id}`, `join token created (uses ${body.uses ?? 'unlimited'}, expires ${out.expiresAt}, ${describeAuthority(authority)})`);
          return out;
        },
      }),
      route({
        method: 'GET', path: '/api/v1/join-tokens', auth: 'admin', summary: 'List join tokens (never their secrets).', response: z.array(S.JoinToken),
        handle: async () =>
          (await d.store.listJoinTokens()).map((t) => ({
            id: t.id, expiresAt: new Date(t.expiresAt).toISOString(), uses: t.maxUses, used: t.used, labels: t.labels, authority: t.authority,
            expired: t.expiresAt <= Date.now(), createdBy: t.createdBy,
          })),
      }),
      route({
        method: 'DELETE', path: '/api/v1/join-tokens/:id', auth: 'admin', summary: 'Delete a join token.', params: id, response: S.Deleted,
        handle: async ({ params, principal }) => {
          if (!(await d.store.deleteJoinToken(params.id))) throw new WarrenError('WARREN_E_NOT_FOUND', `no join token "${params.id}"`);
          await this.adminAudit(principal, `join-token/${params.id}`, 'join token deleted');
          return { deleted: params.id };
        },
      }),
      route({
        method: 'POST', path: '/api/v1/tokens', auth: 'admin', status: 201, summary: 'Issue an access token for a user or program.',
        body: z.object({ user: nameSchema, groups: z.array(nameSchema).max(50).default([]), ttl: ttl('ttl').default(8 * 3_600_000) }).strict(),
        response: S.TokenIssued,
        handle: async ({ body, principal }) => {
          const out = await d.tokens.issue({ user: body.user, groups: body.groups, ttlMs: body.ttl, createdBy: principal.user });
          await this.adminAudit(principal, `token/${out.id}`, `access token issued for user "${out.user}" groups [${out.groups.join(',')}] until ${out.expiresAt}`);
          return out;
        },
      }),
      route({
        method: 'POST', path: '/api/v1/user-certs', auth: 'admin', status: 201,
        summary: 'Sign a user client certificate from a CSR (the key stays with the user); usable instead of a token.',
        body: z.object({ user: nameSchema, groups: z.array(nameSchema).max(50).default([]), ttl: ttl('ttl').default(24 * 3_600_000), csr: z.string().max(16384) }).strict(),
        response: S.UserCert,
        handle: async ({ body, principal }) => {
          if (body.ttl > d.maxUserCertTtlMs) {
            const cap = formatDuration(d.maxUserCertTtlMs);
            throw new WarrenError('WARREN_E_BAD_REQUEST', `ttl ${formatDuration(body.ttl)} exceeds this hub's cap of ${cap} for user certificates (they cannot be revoked); ask for --ttl ${cap} or less, or start the hub with a larger --max-user-cert-ttl`, { field: 'ttl' });
          }
          let issued;
          try {
            issued = await issueUserCert(d.ca, body.csr, body.user, body.groups, body.ttl / 86_400_000);
          } catch (err) {
            throw new WarrenError('WARREN_E_BAD_REQUEST', `csr: ${(err as Error).message}`, { field: 'csr' });
          }
          const expiresAt = issued.notAfter.toISOString();
          await this.adminAudit(principal, `user-cert/${issued.serial}`, `client certificate issued for user "${body.user}" groups [${body.groups.join(',')}] until ${expiresAt}`);
          return { certPem: issued.certPem, caPem: d.caPem, serial: issued.serial, user: body.user, groups: body.groups, expiresAt };
        },
      }),
      route({
        method: 'GET', path: '/api/v1/tokens', auth: 'admin', summary: 'List access tokens (ids, never the tokens).', response: z.array(S.AccessToken),
        handle: async () =>
          (await d.store.listAccessTokens()).map((t) => ({
            id: t.id, user: t.user, groups: t.groups, expiresAt: t.expiresAt ? new Date(t.expiresAt).toISOString() : null,
            revoked: t.revokedAt !== null, createdBy: t.createdBy,
          })),
      }),
      route({
        method: 'DELETE', path: '/api/v1/tokens/:id', auth: 'admin', summary: 'Revoke an access token.', params: id,
        response: z.object({ revoked: z.string() }),
        handle: async ({ params, principal }) => {
          if (!(await d.store.revokeAccessToken(params.id, Date.now()))) throw new WarrenError('WARREN_E_NOT_FOUND', `no active access token "${params.id}"`);
          await d.revoke?.(`access token ${params.id} revoked`);
          await this.adminAudit(principal, `token/${params.id}`, 'access token revoked');
          return { revoked: params.id };
        },
      }),
      route({
        method: 'GET', path: '/api/v1/agents', auth: 'admin', summary: 'List agents with live tunnel state.', response: z.array(S.Agent),
        handle: async () => Promise.all((await d.store.listAgents()).map((a) => this.agentView(a))),
      }),
      route({
        method: 'GET', path: '/api/v1/hubs', auth: 'admin', summary: 'The hubs sharing this store: leases, relay addresses, agents on each.', response: z.array(S.Hub),
        handle: async () =>
          (d.mesh?.list() ?? []).map((h) => ({
            id: h.id, relayUrl: h.relayUrl, startedAt: new Date(h.startedAt).toISOString(), leaseExpiresAt: new Date(h.leaseExpiresAt).toISOString(),
            self: h.self, leader: h.leader, agents: h.agents,
          })),
      }),
      route({
        method: 'GET', path: '/api/v1/agents/:name', auth: 'admin', summary: 'One agent with live tunnel state.', params: name, response: S.Agent,
        handle: async ({ params }) => {
          const a = await d.store.getAgent(params.name);
          if (!a) throw new WarrenError('WARREN_E_NOT_FOUND', `no agent "${params.name}"; list them with \`warren agents ls\``);
          return this.agentView(a);
        },
      }),
      route({
        method: 'DELETE', path: '/api/v1/agents/:name', auth: 'admin', summary: 'Remove an agent: revokes its certificate and drops its tunnel.',
        params: name, response: S.Deleted,
        handle: async ({ params, principal }) => {
          if (!(await d.store.deleteAgent(params.name))) throw new WarrenError('WARREN_E_NOT_FOUND', `no agent "${params.name}"`);
          // Streams first, so that their audit rows say `revoked`, then the tunnel itself.
          await d.revoke?.(`agent ${params.name} removed`);
          d.tunnels.forget(params.name);
          await this.adminAudit(principal, `agent/${params.name}`, 'agent removed; certificate revoked');
          return { deleted: params.name };
        },
      }),
      route({
        method: 'POST', path: '/api/v1/grants', auth: 'admin', status: 201, summary: 'Grant a user or group access to targets or a cluster.',
        body: grantSchema, response: S.Grant,
        handle: async ({ body: g, principal }) => {
          const record: GrantRecord = {
            id: 'g_' + randomBytes(6).toString('hex'), subjectKind: g.user ? 'user' : 'group', subject: (g.user ?? g.group)!,
            agent: g.agent ?? null, host: g.host ?? null, ports: g.ports ?? null, cluster: g.cluster ?? null, kubeGroups: g.kubeGroups,
            createdAt: Date.now(), createdBy: principal.user,
          };
          await d.store.createGrant(record);
          await this.adminAudit(principal, `grant/${record.id}`, `grant created: ${describeGrant(record)}`);
          return grantView(record);
        },
      }),
      route({
        method: 'GET', path: '/api/v1/grants', auth: 'admin', summary: 'List grants.', response: z.array(S.Grant),
        handle: async () => (await d.store.listGrants()).map(grantView),
      }),
      route({
        method: 'DELETE', path: '/api/v1/grants/:id', auth: 'admin', summary: 'Delete a grant.', params: id, response: S.Deleted,
        handle: async ({ params, principal }) => {
          if (!(await d.store.deleteGrant(params.id))) throw new WarrenError('WARREN_E_NOT_FOUND', `no grant "${params.id}"; list them with \`warren grants ls\``);
          await d.revoke?.(`grant ${params.id} deleted`);
          await this.adminAudit(principal, `grant/${params.id}`, 'grant deleted');
          return { deleted: params.id };
        },
      }),
      route({
        method: 'GET', path: '/api/v1/routes/explain', auth: 'user',
        summary: 'Dry run: ?target=HOST:PORT → the rule, route and agents that would serve it, and the grant that allows the caller (admins: any ?user=U&groups=a,b); nothing is dialled.',
        query: explainQuery, response: S.RouteExplanation,
        handle: async ({ query, principal }) => explainFor(query.target, await judgedIdentity(principal, query, 'route explanations', d.store), { live: d.tunnels, store: d.store }),
      }),
      route({
        method: 'GET', path: '/api/v1/audit', auth: 'user',
        summary: "Audit rows, newest last: ?since=1h|ISO, user, agent, kind, limit; follow=true streams NDJSON as rows are written. A non-admin sees only their own rows.",
        query: auditQuery, response: z.array(S.AuditEntry), follow: S.AuditEntry,
        handle: async ({ query, res, req, principal }) => {
          const user = isAdmin(principal) ? query.user : (await judgedIdentity(principal, query, 'audit rows', d.store)).principal.user;
          return this.auditRoute({ ...query, user }, req, res);
        },
      }),
      ...selfRoutes({
        store: d.store, tunnels: d.tunnels, agents: async () => Promise.all((await d.store.listAgents()).map((a) => this.agentView(a))),
        hub: () => ({ url: d.hubUrl(), version: d.version, caFingerprint: d.caPin }),
      }),
      ...(d.forwards ? forwardRoutes(d.forwards, (p, target, reason) => this.adminAudit(p, target, reason)) : []),
      ...(d.forwards ? egressRoutes(d.forwards, (p, target, reason) => this.adminAudit(p, target, reason)) : []),
      ...(d.externalServices ? externalServiceRoutes(d.externalServices, (p, target, reason) => this.adminAudit(p, target, reason)) : []),
      ...(d.kubeRoutes ?? []),
      route({
        method: 'GET', path: '/api/v1/openapi.json', auth: 'none', summary: 'This API as an OpenAPI 3.1 document.', response: S.OpenApiDocument,
        handle: async () => this.openapi(),
      }),
    ];
  }

  private async auditRoute(query: z.output<typeof auditQuery>, req: IncomingMessage, res: ServerResponse): Promise<Array<ReturnType<typeof auditView>> | undefined> {
    const filter = {
      ...(query.since !== undefined ? { since: query.since } : {}),
      ...(query.user ? { user: query.user } : {}),
      ...(query.agent ? { agent: query.agent } : {}),
      ...(query.kind ? { kind: query.kind } : {}),
      limit: query.limit,
    };
    const matches = (r: AuditEntry) =>
      (!filter.user || r.user === filter.user) && (!filter.agent || r.agent === filter.agent) && (!filter.kind || r.kind === filter.kind);
    if (query.follow !== 'true') return (await this.deps.audit.query(filter)).map(auditView);

    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const pending: AuditEntry[] = [];
    let lastId = 0;
    let live = false;
    const write = (r: AuditEntry) => {
      if (r.id <= lastId || !matches(r)) return;
      lastId = r.id;
      res.write(JSON.stringify(auditView(r)) + '\n');
    };
    // Subscribe before the backlog query so no row falls between the two.
    const unsubscribe = this.deps.audit.subscribe((r) => (live ? write(r) : pending.push(r)));
    req.socket.once('close', unsubscribe);
    for (const r of await this.deps.audit.query(filter)) write(r);
    for (const r of pending) write(r);
    live = true;
    return undefined;
  }

  private openapi(): OpenApi {
    return (this.document ??= openapiDocument(this.routes, { title: 'Warren hub API', version: this.deps.version }, S.ErrorBody));
  }
}

function describeGrant(g: GrantRecord): string {
  const parts = [`${g.subjectKind}:${g.subject}`];
  if (g.agent) parts.push(`agent=${g.agent}`);
  if (g.host) parts.push(`host=${g.host}`);
  if (g.ports) parts.push(`ports=${g.ports}`);
  if (g.cluster) parts.push(`cluster=${g.cluster}`);
  if (g.kubeGroups.length) parts.push(`kubeGroups=${g.kubeGroups.join(',')}`);
  return parts.join(' ');
}

/** A path segment as the client percent-encoded it; malformed encoding (`%E0`, `%zz`) is the client's error. */
function decodePathParam(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new WarrenError('WARREN_E_BAD_REQUEST', `${name}: "${raw.slice(0, 100)}" is not valid percent-encoded UTF-8`, { field: name });
  }
}

function agentFromCert(req: IncomingMessage): { name: string; serial: string } {
  const socket = req.socket;
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) {
    throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'this endpoint needs the agent client certificate');
  }
  const id = verifiedPeer(socket);
  if (id?.kind !== 'agent') throw new WarrenError('WARREN_E_UNAUTHENTICATED', 'not an agent certificate');
  return { name: id.name, serial: id.serial };
}

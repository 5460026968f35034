/**
 * The admin API's answers as zod schemas, shared by the routes that return them (api.ts, forwardsApi.ts,
 * kube/clustersApi.ts). Each `id` becomes a component of the OpenAPI document (apiRoute.ts).
 * Lists are `.readonly()` so that views built from the store's readonly records fit them.
 */
import { z } from 'zod';
import { ErrorCodes, type ErrorCode } from '../shared/errors.js';
import type { GrantRecord } from '../store/store.js';

const list = <T extends z.ZodType>(item: T) => z.array(item).readonly();
const Time = z.iso.datetime().describe('ISO 8601, UTC');
const Labels = z.record(z.string(), z.string());
const Strings = list(z.string());
const RttMs = z.number().nullable().describe('Milliseconds: the round trip of the hub\'s last keepalive probe of the agent\'s tunnel, refreshed at least every six ping intervals; null when offline or not measured yet');
const Code = z.enum(Object.keys(ErrorCodes) as [ErrorCode, ...ErrorCode[]]);

export const ErrorBody = z
  .looseObject({
    code: Code,
    message: z.string().describe('What went wrong and what to do next'),
    requestId: z.string().optional().describe('Repeated in the hub log for this request'),
  })
  .describe('Every error answer; extra fields (e.g. `field`) name what was wrong')
  .meta({ id: 'Error' });

export const Deleted = z.object({ deleted: z.string() }).meta({ id: 'Deleted' });

export const Authority = z
  .object({ name: z.string().optional(), namePattern: z.string().optional(), clusters: Strings, routes: Strings, sourceIps: Strings.optional() })
  .describe('What a join token lets an agent claim')
  .meta({ id: 'Authority' });

export const Version = z.object({ version: z.string().describe('The hub\'s Warren version') }).meta({ id: 'Version' });

export const Whoami = z.object({ user: z.string(), groups: Strings, via: z.enum(['token', 'cert', 'jwt', 'uds', 'forward']), admin: z.boolean() }).meta({ id: 'Whoami' });

export const AgentCert = z.object({ certPem: z.string(), caPem: z.string() });

export const Joined = AgentCert.extend({ name: z.string(), labels: Labels });

export const JoinTokenCreated = z
  .object({
    token: z.string().describe('The secret; shown once'), id: z.string(), expiresAt: Time, uses: z.number().int().nullable(), labels: Labels,
    authority: Authority, command: z.string().describe('The `warren agent` command that uses it'),
  })
  .meta({ id: 'JoinTokenCreated' });

export const JoinToken = z
  .object({ id: z.string(), expiresAt: Time, uses: z.number().int().nullable(), used: z.number().int(), labels: Labels, authority: Authority, expired: z.boolean(), createdBy: z.string() })
  .meta({ id: 'JoinToken' });

export const TokenIssued = z
  .object({ token: z.string().describe('The secret; shown once'), id: z.string(), user: z.string(), groups: Strings, expiresAt: Time.nullable() })
  .meta({ id: 'TokenIssued' });

export const AccessToken = z
  .object({ id: z.string(), user: z.string(), groups: Strings, expiresAt: Time.nullable(), revoked: z.boolean(), createdBy: z.string() })
  .meta({ id: 'AccessToken' });

export const UserCert = z
  .object({ certPem: z.string(), caPem: z.string(), serial: z.string(), user: z.string(), groups: Strings, expiresAt: Time })
  .meta({ id: 'UserCert' });

export const Agent = z
  .object({
    name: z.string(),
    connected: z.boolean(),
    labels: Labels,
    authority: Authority,
    clusters: Strings.describe('Clusters it serves now (or did when last connected)'),
    routes: Strings.describe('Routes it advertises now (or did when last connected)'),
    version: z.string().nullable(),
    hostname: z.string().nullable(),
    allow: Strings,
    sourceIps: Strings.describe('Source addresses it may dial from (a gateway agent)'),
    connectedAt: Time.nullable(),
    lastSeen: Time.nullable(),
    rttMs: RttMs,
    streamsOpen: z.number().int(),
    bytesIn: z.number().int().describe('Bytes received from the agent over its tunnel since it connected (0 when offline)'),
    bytesOut: z.number().int().describe('Bytes sent to the agent over its tunnel since it connected'),
    remoteAddress: z.string().nullable(),
    certExpiresAt: Time,
    hub: z.string().nullable().describe('The hub its tunnel is on (`warren hubs ls`); null when not connected'),
  })
  .meta({ id: 'Agent' });

export const Hub = z
  .object({
    id: z.string().describe('New at every start of a hub process'),
    relayUrl: z.string().describe('Where the other hubs reach it'),
    startedAt: Time,
    leaseExpiresAt: Time.describe("When it leaves the set unless it renews its lease (the store's clock)"),
    self: z.boolean().describe('The hub that answered'),
    leader: z.boolean().describe('Holds the hub-side forward entries (the oldest live hub)'),
    agents: z.number().int().describe('Agents whose tunnel is on it'),
  })
  .meta({ id: 'Hub' });

export const Grant = z
  .object({
    id: z.string(),
    user: z.string().optional(),
    group: z.string().optional(),
    subject: z.string().describe('user:NAME or group:NAME'),
    agent: z.string().nullable(),
    host: z.string().nullable(),
    ports: z.string().nullable(),
    cluster: z.string().nullable(),
    kubeGroups: Strings,
    createdAt: Time,
    createdBy: z.string(),
  })
  .meta({ id: 'Grant' });

/** A grant as the API shows it. */
export function grantView(g: GrantRecord): z.input<typeof Grant> {
  return {
    id: g.id, ...(g.subjectKind === 'user' ? { user: g.subject } : { group: g.subject }), subject: `${g.subjectKind}:${g.subject}`, agent: g.agent, host: g.host, ports: g.ports,
    cluster: g.cluster, kubeGroups: g.kubeGroups, createdAt: new Date(g.createdAt).toISOString(), createdBy: g.createdBy,
  };
}

export const AuditEntry = z
  .object({
    id: z.number().int(),
    time: Time,
    kind: z.enum(['stream', 'kube', 'admin', 'agent', 'shell']),
    user: z.string().nullable(),
    door: z.string().nullable(),
    agent: z.string().nullable(),
    target: z.string().nullable(),
    result: z.enum(['ok', 'denied', 'error']),
    reason: z.string().nullable(),
    bytesIn: z.number().nullable(),
    bytesOut: z.number().nullable(),
    durationMs: z.number().nullable(),
    source: z.string().nullable(),
    verb: z.string().nullable().optional().describe('kube rows'),
    resource: z.string().nullable().optional().describe('kube rows'),
    namespace: z.string().nullable().optional().describe('kube rows'),
    name: z.string().nullable().optional().describe('kube rows'),
    status: z.number().int().nullable().optional().describe('kube rows: the HTTP status answered'),
  })
  .meta({ id: 'AuditEntry' });

const GrantSummary = z.object({ id: z.string(), subject: z.string(), agent: z.string().nullable(), host: z.string().nullable(), ports: z.string().nullable() });
const GrantRef = z.union([GrantSummary, z.literal('admin')]).nullable();

export const RouteExplanation = z
  .object({
    target: z.string(),
    host: z.string(),
    port: z.number().int(),
    rule: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]),
    ruleName: z.string(),
    route: z.string().nullable(),
    dialHost: z.string().nullable(),
    agent: z.string().nullable(),
    candidates: list(z.object({
      agent: z.string(), connected: z.boolean(), route: z.string().nullable(), streamsOpen: z.number().int(), selected: z.boolean(), allowed: z.boolean(), grant: GrantRef,
    })),
    user: z.string(),
    groups: Strings,
    groupsFrom: z.enum(['caller', 'flag', 'tokens']),
    allowed: z.boolean(),
    grant: GrantRef,
    grantText: z.string(),
    refusal: z.object({ code: Code, message: z.string() }).nullable(),
  })
  .meta({ id: 'RouteExplanation' });

export const Cluster = z
  .object({ name: z.string(), agents: Strings, connectedAgents: Strings, connected: z.boolean(), kubeGroups: Strings })
  .meta({ id: 'Cluster' });

export const Forward = z
  .object({
    name: z.string(),
    kind: z.enum(['forward', 'egress', 'ingress']).describe('egress: the gateway dials from sourceIp; ingress: the gateway listens on sourceIp'),
    gateway: z.string().nullable().describe('Egress and ingress rules: the gateway agent'),
    sourceIp: z.string().nullable(),
    owner: z.string().nullable().describe('externalservice/NAME when `warren apply` made it'),
    entry: z.string(),
    agent: z.string().nullable(),
    target: z.string(),
    allowFrom: Strings,
    listening: z.boolean(),
    address: z.string().nullable(),
    heldBy: z.string().nullable().describe('Several hubs: the id of the hub that runs the entry (the hub-side entries\' holder, or the hub the entry agent is on); listening, address and counters are the answering hub\'s view'),
    openStreams: z.number().int(),
    connections: z.number().int(),
    bytesIn: z.number(),
    bytesOut: z.number(),
    lastError: z.object({ code: z.string(), message: z.string(), time: Time }).nullable(),
    createdAt: Time,
    createdBy: z.string(),
  })
  .meta({ id: 'Forward' });

export const OpenApiDocument = z.object({
  openapi: z.literal('3.1.0'), info: z.object({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()), components: z.record(z.string(), z.unknown()),
});

export const Me = z
  .object({
    user: z.string(),
    groups: Strings,
    via: z.enum(['token', 'cert', 'jwt', 'uds', 'forward']).describe('How the caller proved who it is'),
    admin: z.boolean(),
    tokenId: z.string().nullable().describe('The hub access token used, if one was'),
    expiresAt: Time.nullable().describe('When the credential used expires (null: never)'),
    hub: z.object({ url: z.string(), version: z.string(), caFingerprint: z.string() }),
  })
  .meta({ id: 'Me' });

export const ReachableTarget = z
  .object({
    agent: z.string(),
    connected: z.boolean(),
    rttMs: RttMs,
    lastSeen: Time.nullable(),
    version: z.string().nullable(),
    labels: Labels,
    routes: Strings.describe('Routes the agent advertises (rule 3 targets)'),
    hosts: z.string().describe('Hosts the grant lets the agent dial: glob, CIDR, localhost (its own host) or *'),
    ports: z.string().describe('22,8000-8100 or *'),
    grant: z.string().describe('The grant id, or admin'),
  })
  .meta({ id: 'ReachableTarget' });

export const MyAccess = z
  .object({
    user: z.string(),
    groups: Strings,
    groupsFrom: z.enum(['caller', 'flag', 'tokens']),
    admin: z.boolean(),
    targets: list(ReachableTarget).describe('One row per agent and grant that covers it'),
    clusters: list(Cluster),
    grants: list(Grant).describe('The grants that name this identity'),
  })
  .meta({ id: 'MyAccess' });

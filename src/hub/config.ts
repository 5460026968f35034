/**
 * The hub's configuration: one defaults object, one schema, and the only place the hub reads the
 * environment. Contradictory or malformed options fail here, at start-up, never on a first request.
 */
import path from 'node:path';
import { z } from 'zod';
import { WarrenError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { parseListen, type HostPort } from '../hostPort.js';
import type { QuotaLimits } from './quotas.js';
import type { DoorName } from './doors/door.js';
import type { ExternalJwtPolicy } from './externalJwt.js';

export interface HubConfig {
  readonly listen: HostPort;
  readonly dataDir: string;
  /** The URL agents and clients use; when unset it is derived from the bound address. */
  readonly publicUrl: string | undefined;
  readonly storePath: string;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  /** Extra names and addresses for the generated serving certificate. */
  readonly tlsSans: readonly string[];
  readonly socksListen: HostPort | undefined;
  readonly connectUds: string | undefined;
  /** --jwt-public-key and the flags that limit what its tokens can do; undefined: no external issuer. */
  readonly jwt: ExternalJwtConfig | undefined;
  readonly pingIntervalMs: number;
  readonly agentCertTtlMs: number;
  /** The longest TTL `warren user-cert create` may ask for: user certificates cannot be revoked. */
  readonly maxUserCertTtlMs: number;
  readonly drainTimeoutMs: number;
  readonly dialTimeoutMs: number;
  /** How long a client may take to send TLS handshake and request headers (slowloris bound). */
  readonly headerTimeoutMs: number;
  /** TLS handshakes in progress at once; later connections wait their turn. */
  readonly maxHandshakes: number;
  /** Stream quotas (0: no limit); see quotas.ts. */
  readonly quotas: QuotaLimits;
  /** Connections one source address may have open before authenticating (TLS handshake, SOCKS5 greeting). */
  readonly maxPendingPerSource: number;
  /** A connection to the main port that sends no byte of its ClientHello by then is closed. */
  readonly clientHelloTimeoutMs: number;
  readonly logLevel: string;
  readonly demo: boolean;
}

export interface ExternalJwtConfig extends ExternalJwtPolicy {
  readonly publicKeyFile: string;
}

/**
 * The doors that take a bearer token. The unix-socket door (file permissions) and forwards (the hub's
 * own principal) never see one, so naming them would suggest a protection that is not there.
 */
const JWT_DOOR_NAMES: Readonly<Record<string, DoorName>> = { kube: 'kube', connect: 'connect', socks5: 'socks5', socks: 'socks5', api: 'api' };

const jwtDoors = z.string().transform((s, ctx) => {
  const doors = new Set<DoorName>();
  for (const name of s.split(',').map((n) => n.trim().toLowerCase())) {
    const door = JWT_DOOR_NAMES[name];
    if (!door) {
      ctx.addIssue({ code: 'custom', message: `--jwt-doors: "${name}" is not a door that takes tokens; use a comma list of ${Object.keys(JWT_DOOR_NAMES).join(', ')}` });
      return z.NEVER;
    }
    doors.add(door);
  }
  return [...doors];
});

const duration = (what: string) =>
  z.string().transform((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `${what}: "${s}" is not a duration like 500ms, 10s, 5m, 8h, 30d` });
      return z.NEVER;
    }
    return ms;
  });

const count = (what: string) =>
  z.string().transform((s, ctx) => {
    if (!/^[1-9]\d{0,5}$/.test(s)) {
      ctx.addIssue({ code: 'custom', message: `${what}: "${s}" is not a whole number from 1 to 999999` });
      return z.NEVER;
    }
    return Number(s);
  });

const limit = (what: string) =>
  z.string().transform((s, ctx) => {
    if (!/^(0|[1-9]\d{0,6})$/.test(s)) {
      ctx.addIssue({ code: 'custom', message: `${what}: "${s}" is not a whole number from 0 (no limit) to 9999999` });
      return z.NEVER;
    }
    return Number(s);
  });

const listen = (what: string) =>
  z.string().transform((s, ctx) => {
    const hp = parseListen(s);
    if (!hp) {
      ctx.addIssue({ code: 'custom', message: `${what}: "${s}" is not HOST:PORT (e.g. 0.0.0.0:8443, 127.0.0.1:0)` });
      return z.NEVER;
    }
    return hp;
  });

export const hubDefaults = {
  listen: '0.0.0.0:8443',
  dataDir: './warren-data',
  pingInterval: '10s',
  agentCertTtl: '30d',
  maxUserCertTtl: '7d',
  drainTimeout: '10s',
  dialTimeout: '10s',
  headerTimeout: '10s',
  maxHandshakes: '64',
  maxStreamsPerPrincipal: '256',
  maxNewStreamsPerSecond: '1000',
  maxStreamsPerAgent: '4000',
  maxPendingPerSource: '1024',
  clientHelloTimeout: '3s',
  jwtMaxTtl: '24h',
  jwtDoors: 'kube',
  logLevel: 'info',
};

const schema = z
  .object({
    listen: listen('--listen').prefault(hubDefaults.listen),
    dataDir: z.string().min(1).default(hubDefaults.dataDir),
    publicUrl: z.url({ protocol: /^https$/, error: '--public-url must be an https:// URL' }).optional(),
    store: z.string().optional(),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    tlsSan: z.array(z.string().min(1)).default([]),
    socksListen: listen('--socks-listen').optional(),
    connectUds: z.string().min(1).optional(),
    jwtPublicKey: z.string().min(1).optional(),
    // No defaults in the schema for these: given without --jwt-public-key they are a mistake to report.
    jwtMaxTtl: duration('--jwt-max-ttl').optional(),
    jwtIssuer: z.string().min(1, '--jwt-issuer must not be empty').optional(),
    jwtAudience: z.string().min(1, '--jwt-audience must not be empty').optional(),
    jwtTrustNames: z.boolean().optional(),
    jwtDoors: jwtDoors.optional(),
    pingInterval: duration('--ping-interval').prefault(hubDefaults.pingInterval),
    agentCertTtl: duration('--agent-cert-ttl').prefault(hubDefaults.agentCertTtl),
    maxUserCertTtl: duration('--max-user-cert-ttl').prefault(hubDefaults.maxUserCertTtl),
    drainTimeout: duration('--drain-timeout').prefault(hubDefaults.drainTimeout),
    dialTimeout: duration('--dial-timeout').prefault(hubDefaults.dialTimeout),
    headerTimeout: duration('--header-timeout').prefault(hubDefaults.headerTimeout),
    maxHandshakes: count('--max-handshakes').prefault(hubDefaults.maxHandshakes),
    maxStreamsPerPrincipal: limit('--max-streams-per-principal').prefault(hubDefaults.maxStreamsPerPrincipal),
    maxNewStreamsPerSecond: limit('--max-new-streams-per-second').prefault(hubDefaults.maxNewStreamsPerSecond),
    maxStreamsPerAgent: limit('--max-streams-per-agent').prefault(hubDefaults.maxStreamsPerAgent),
    maxPendingPerSource: count('--max-pending-per-source').prefault(hubDefaults.maxPendingPerSource),
    clientHelloTimeout: duration('--client-hello-timeout').prefault(hubDefaults.clientHelloTimeout),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    demo: z.boolean().default(false),
  })
  .strict();

export type HubFlags = z.input<typeof schema>;

/** Builds the config from CLI flags; WARREN_LOG_LEVEL is the one environment variable the hub reads. */
export function hubConfig(flags: HubFlags, env: NodeJS.ProcessEnv = process.env): HubConfig {
  const parsed = schema.safeParse({ logLevel: env.WARREN_LOG_LEVEL, ...stripUndefined(flags) });
  if (!parsed.success) throw new WarrenError('WARREN_E_CONFIG', parsed.error.issues.map((i) => i.message).join('; '));
  const f = parsed.data;
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) {
    throw new WarrenError('WARREN_E_CONFIG', '--tls-cert and --tls-key go together: give both or neither');
  }
  const dataDir = path.resolve(f.dataDir);
  let storePath = path.join(dataDir, 'warren.db');
  if (f.store !== undefined) {
    if (f.store.startsWith('sqlite:')) storePath = path.resolve(f.store.slice('sqlite:'.length));
    else if (/^postgres(ql)?:\/\//.test(f.store)) {
      throw new WarrenError('WARREN_E_CONFIG', '--store postgres:// is not supported by this version yet; use sqlite:PATH (the default)');
    } else throw new WarrenError('WARREN_E_CONFIG', `--store must be sqlite:PATH or postgres://…, not "${f.store}"`);
  }
  return {
    listen: f.listen,
    dataDir,
    publicUrl: f.publicUrl?.replace(/\/+$/, ''),
    storePath,
    tlsCertFile: f.tlsCert,
    tlsKeyFile: f.tlsKey,
    tlsSans: f.tlsSan,
    socksListen: f.socksListen,
    connectUds: f.connectUds,
    jwt: externalJwtConfig(f),
    pingIntervalMs: f.pingInterval,
    agentCertTtlMs: f.agentCertTtl,
    maxUserCertTtlMs: f.maxUserCertTtl,
    drainTimeoutMs: f.drainTimeout,
    dialTimeoutMs: f.dialTimeout,
    headerTimeoutMs: f.headerTimeout,
    maxHandshakes: f.maxHandshakes,
    quotas: { perPrincipal: f.maxStreamsPerPrincipal, ratePerSecond: f.maxNewStreamsPerSecond, perAgent: f.maxStreamsPerAgent },
    maxPendingPerSource: f.maxPendingPerSource,
    clientHelloTimeoutMs: f.clientHelloTimeout,
    logLevel: f.logLevel,
    demo: f.demo,
  };
}

function externalJwtConfig(f: z.output<typeof schema>): ExternalJwtConfig | undefined {
  if (f.jwtPublicKey === undefined) {
    const given = (
      [
        ['--jwt-max-ttl', f.jwtMaxTtl],
        ['--jwt-issuer', f.jwtIssuer],
        ['--jwt-audience', f.jwtAudience],
        ['--jwt-trust-names', f.jwtTrustNames || undefined],
        ['--jwt-doors', f.jwtDoors],
      ] as const
    ).filter(([, v]) => v !== undefined);
    if (given.length) throw new WarrenError('WARREN_E_CONFIG', `${given.map(([flag]) => flag).join(', ')} without --jwt-public-key: there is no external issuer to apply ${given.length > 1 ? 'them' : 'it'} to`);
    return undefined;
  }
  return {
    publicKeyFile: f.jwtPublicKey,
    maxTtlMs: f.jwtMaxTtl ?? parseDuration(hubDefaults.jwtMaxTtl)!,
    issuer: f.jwtIssuer,
    audience: f.jwtAudience,
    trustNames: f.jwtTrustNames ?? false,
    doors: f.jwtDoors ?? jwtDoors.parse(hubDefaults.jwtDoors),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

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
  readonly jwtPublicKeyFile: string | undefined;
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
    jwtPublicKeyFile: f.jwtPublicKey,
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

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

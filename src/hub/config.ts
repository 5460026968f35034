/**
 * The hub's configuration: every option declared once below (flag, default, help, environment,
 * validation), and the only place the hub reads the environment or its config file. Contradictory or
 * malformed options fail here, at start-up, never on a first request.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseListen } from '../shared/hostPort.js';
import { configSchema, durationText, logFormatOption, logLevelOption, option, parseOptions, refuse, textAs } from '../shared/options.js';
import { readOptionsFile } from '../shared/optionsFile.js';
import type { DoorName } from '../doors/door.js';
import { redactUrl, type StoreLocation } from '../store/store.js';

/**
 * The doors that take a bearer token. The unix-socket door (file permissions) and forwards (the hub's
 * own principal) never see one, so naming them would suggest a protection that is not there.
 */
const JWT_DOOR_NAMES: Readonly<Record<string, DoorName>> = { kube: 'kube', connect: 'connect', socks5: 'socks5', socks: 'socks5', api: 'api' };

const jwtDoors = z.string().transform((text, ctx) => {
  const doors = new Set<DoorName>();
  for (const name of text.split(',').map((n) => n.trim().toLowerCase())) {
    const door = JWT_DOOR_NAMES[name];
    if (!door) return refuse(ctx, `"${name}" is not a door that takes tokens; use a comma list of ${Object.keys(JWT_DOOR_NAMES).join(', ')}`);
    doors.add(door);
  }
  return [...doors];
});

const listen = textAs(parseListen, 'is not HOST:PORT (e.g. 0.0.0.0:8443, 127.0.0.1:0)');
const count = textAs((s) => (/^[1-9]\d{0,5}$/.test(s) ? Number(s) : undefined), 'is not a whole number from 1 to 999999');
const limit = textAs((s) => (/^(0|[1-9]\d{0,6})$/.test(s) ? Number(s) : undefined), 'is not a whole number from 0 (no limit) to 9999999');

// Applied only with --jwt-public-key: given without it, the --jwt-… flags are a mistake to report.
const JWT_MAX_TTL = '24h';
const JWT_DOORS = 'kube';

export const hubOptions = {
  config: option(z.string().min(1), { arg: 'file', notInFile: true, help: 'read options from this YAML file: keys are the flag names without --, e.g. `max-handshakes: 128`; flags given here win' }),
  listen: option(listen, { arg: 'addr', default: '0.0.0.0:8443', help: 'HOST:PORT for agents, the API and HTTP CONNECT (port 0: a free port)' }),
  dataDir: option(z.string().min(1).transform((dir) => path.resolve(dir)), { arg: 'dir', default: './warren-data', help: 'CA, serving certificate, admin token and SQLite store' }),
  publicUrl: option(z.url({ protocol: /^https$/, error: '--public-url must be an https:// URL' }).transform((url) => url.replace(/\/+$/, '')), {
    arg: 'url',
    help: 'the https:// URL agents and clients use (default: this host and the bound port)',
  }),
  store: option(z.string(), {
    arg: 'url',
    env: 'WARREN_STORE',
    help: 'sqlite:PATH (default: DATA_DIR/warren.db), or postgres://USER@HOST:PORT/DB shared by several hubs (password from PGPASSWORD or --store-password-file)',
  }),
  storePasswordFile: option(z.string().min(1), { arg: 'file', help: 'read the PostgreSQL password from this file (first line)' }),
  pgPassword: option(z.string(), { envOnly: true, env: 'PGPASSWORD', help: 'the PostgreSQL password for --store postgres://…' }),
  relayUrl: option(z.url({ protocol: /^https$/, error: '--relay-url must be an https:// URL' }).transform((url) => url.replace(/\/+$/, '')), {
    arg: 'url',
    env: 'WARREN_RELAY_URL',
    help: 'with several hubs on one store: where the other hubs reach this one, its own address (one per hub), e.g. https://$(POD_IP):8443 (default: this host and the bound port)',
  }),
  hubLease: option(durationText, { arg: 'd', default: '10s', help: 'with several hubs: a hub that has not renewed its lease for this long leaves the hub set (its agents reconnect elsewhere, its forwards move)' }),
  tlsCert: option(z.string(), { arg: 'file', help: 'serve this certificate instead of the generated one (with --tls-key)' }),
  tlsKey: option(z.string(), { arg: 'file', help: 'key for --tls-cert' }),
  tlsSan: option(z.array(z.string().min(1)), { arg: 'name', repeatable: true, default: [], help: 'extra DNS name or IP for the generated certificate (repeatable)' }),
  pingInterval: option(durationText, { arg: 'd', default: '10s', help: 'keepalive interval; a silent agent is dropped after two' }),
  agentGcAfter: option(durationText, { arg: 'd', help: 'remove agents that have not been connected for this long, e.g. 7d (certificate revoked, audited; for agents that come and go with pods) (default: never)' }),
  agentCertTtl: option(durationText, { arg: 'd', default: '30d', help: 'lifetime of agent certificates (renewed at 2/3)' }),
  maxUserCertTtl: option(durationText, { arg: 'd', default: '7d', help: 'longest lifetime `warren user-cert create --ttl` may ask for (user certificates cannot be revoked)' }),
  dialTimeout: option(durationText, { arg: 'd', default: '10s', help: 'how long an agent may take to reach a target' }),
  headerTimeout: option(durationText, { arg: 'd', default: '10s', help: 'how long a client may take to complete TLS and send request headers' }),
  drainTimeout: option(durationText, { arg: 'd', default: '10s', help: 'on SIGTERM, how long requests already sent and open streams may finish; what is left is then refused or reset' }),
  shutdownDelay: option(durationText, {
    arg: 'd',
    help: 'on SIGTERM, keep serving this long with /readyz answering 503 before the listeners close, so a load balancer that checks /readyz stops sending connections first (behind a Kubernetes Service: above the readiness probe period) (default: none)',
  }),
  maxStreamsPerPrincipal: option(limit, { arg: 'n', default: '256', help: 'streams one user, token or forward may hold open at once, every door together (0: no limit)' }),
  maxNewStreamsPerSecond: option(limit, { arg: 'n', default: '1000', help: 'new streams one principal may open per second, with a burst of as many (0: no limit)' }),
  maxStreamsPerAgent: option(limit, { arg: 'n', default: '4000', help: "streams open through one agent at once, shared fairly between principals (below the tunnel's 4096)" }),
  maxHandshakes: option(count, { arg: 'n', default: '64', help: 'TLS handshakes in progress at once; more connections wait their turn (raise it for many far-away agents)' }),
  maxPendingPerSource: option(count, {
    arg: 'n',
    default: '1024',
    help: 'connections one address may hold before authenticating (TLS handshake, SOCKS5 greeting); more are closed at once (agents behind one NAT address count together)',
  }),
  clientHelloTimeout: option(durationText, { arg: 'd', default: '3s', help: 'a connection that sends no byte of its TLS ClientHello by then is closed' }),
  logLevel: logLevelOption,
  logFormat: logFormatOption,
  demo: option(z.boolean(), { default: false, help: 'also run a local demo agent named "demo" that can reach this host' }),
  socksListen: option(listen, { arg: 'addr', help: 'also serve SOCKS5 (RFC 1928/1929, password = access token) on HOST:PORT (port 0: a free port)' }),
  jwtPublicKey: option(z.string().min(1), {
    arg: 'file',
    help: 'trust JWTs signed by this key (PEM public key or certificate; RSA → RS256, EC P-256 → ES256), e.g. multikube tokens routed by their ctx claim; their users and groups are jwt:NAME',
  }),
  jwtMaxTtl: option(durationText, { arg: 'd', help: `longest external JWT accepted, exp − iat (exp − now without iat) (default: ${JWT_MAX_TTL})` }),
  jwtIssuer: option(z.string().min(1, '--jwt-issuer must not be empty'), { arg: 'iss', help: 'accept only external JWTs whose iss claim is this' }),
  jwtAudience: option(z.string().min(1, '--jwt-audience must not be empty'), { arg: 'aud', help: 'accept only external JWTs whose aud claim names this' }),
  jwtTrustNames: option(z.boolean(), { help: 'take external sub and groups as hub user and group names instead of jwt:NAME (warren: groups are always dropped)' }),
  jwtDoors: option(jwtDoors, { arg: 'list', help: `doors where external JWTs are accepted: comma list of kube, connect, socks5, api (default: ${JWT_DOORS})` }),
  connectUds: option(z.string().min(1), { arg: 'path', help: 'also serve plain HTTP CONNECT on this unix socket (mode 0660; callers are user "uds", group warren:uds)' }),
};

const hubSchema = configSchema(hubOptions, (f, ctx) => {
  const fail = (message: string) => refuse(ctx, message);
  if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) return fail('--tls-cert and --tls-key go together: give both or neither');
  let store: StoreLocation = { kind: 'sqlite', path: path.join(f.dataDir, 'warren.db') };
  if (f.store !== undefined) {
    if (f.store.startsWith('sqlite:')) store = { kind: 'sqlite', path: path.resolve(f.store.slice('sqlite:'.length)) };
    else if (/^postgres(ql)?:\/\//.test(f.store)) {
      if (!URL.canParse(f.store)) return fail(`--store ${redactUrl(f.store)} is not a URL; e.g. postgres://warren@db.example:5432/warren`);
      let password = f.pgPassword;
      if (f.storePasswordFile !== undefined) {
        try {
          password = fs.readFileSync(f.storePasswordFile, 'utf8').split(/\r?\n/)[0];
        } catch (err) {
          return fail(`--store-password-file ${f.storePasswordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      store = { kind: 'postgres', url: f.store, ...(password !== undefined && { password }) };
    } else return fail(`--store must be sqlite:PATH or postgres://…, not "${redactUrl(f.store)}"`);
  }
  if (f.storePasswordFile !== undefined && store.kind !== 'postgres') return fail('--store-password-file goes with --store postgres://…');
  const jwtPolicy = (
    [
      ['--jwt-max-ttl', f.jwtMaxTtl],
      ['--jwt-issuer', f.jwtIssuer],
      ['--jwt-audience', f.jwtAudience],
      ['--jwt-trust-names', f.jwtTrustNames || undefined],
      ['--jwt-doors', f.jwtDoors],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (f.jwtPublicKey === undefined && jwtPolicy.length) {
    return fail(`${jwtPolicy.map(([flag]) => flag).join(', ')} without --jwt-public-key: there is no external issuer to apply ${jwtPolicy.length > 1 ? 'them' : 'it'} to`);
  }
  return {
    listen: f.listen,
    dataDir: f.dataDir,
    /** The URL agents and clients use; when unset it is derived from the bound address. */
    publicUrl: f.publicUrl,
    /** The SQLite file, or the PostgreSQL database shared by several hubs. */
    store,
    /** Where other hubs on the same store reach this one; undefined: derived from the bound address. */
    relayUrl: f.relayUrl,
    hubLeaseMs: f.hubLease,
    tlsCertFile: f.tlsCert,
    tlsKeyFile: f.tlsKey,
    /** Extra names and addresses for the generated serving certificate. */
    tlsSans: f.tlsSan,
    socksListen: f.socksListen,
    connectUds: f.connectUds,
    /** --jwt-public-key and the flags that limit what its tokens can do; undefined: no external issuer. */
    jwt:
      f.jwtPublicKey === undefined
        ? undefined
        : {
            publicKeyFile: f.jwtPublicKey,
            maxTtlMs: f.jwtMaxTtl ?? durationText.parse(JWT_MAX_TTL),
            issuer: f.jwtIssuer,
            audience: f.jwtAudience,
            trustNames: f.jwtTrustNames ?? false,
            doors: f.jwtDoors ?? jwtDoors.parse(JWT_DOORS),
          },
    pingIntervalMs: f.pingInterval,
    agentCertTtlMs: f.agentCertTtl,
    /** --agent-gc-after; undefined: agents stay until `warren agents rm`. */
    agentGcAfterMs: f.agentGcAfter,
    /** The longest TTL `warren user-cert create` may ask for: user certificates cannot be revoked. */
    maxUserCertTtlMs: f.maxUserCertTtl,
    drainTimeoutMs: f.drainTimeout,
    /** --shutdown-delay: serving on, not ready, before a SIGTERM closes the listeners. */
    shutdownDelayMs: f.shutdownDelay ?? 0,
    dialTimeoutMs: f.dialTimeout,
    /** How long a client may take to send TLS handshake and request headers (slowloris bound). */
    headerTimeoutMs: f.headerTimeout,
    /** TLS handshakes in progress at once; later connections wait their turn. */
    maxHandshakes: f.maxHandshakes,
    /** Stream quotas (0: no limit); see quotas.ts. */
    quotas: { perPrincipal: f.maxStreamsPerPrincipal, ratePerSecond: f.maxNewStreamsPerSecond, perAgent: f.maxStreamsPerAgent },
    /** Connections one source address may have open before authenticating (TLS handshake, SOCKS5 greeting). */
    maxPendingPerSource: f.maxPendingPerSource,
    /** A connection to the main port that sends no byte of its ClientHello by then is closed. */
    clientHelloTimeoutMs: f.clientHelloTimeout,
    logLevel: f.logLevel,
    logFormat: f.logFormat,
    demo: f.demo,
  };
});

export type HubConfig = Readonly<z.output<typeof hubSchema>>;
export type HubFlags = z.input<typeof hubSchema>;

/** Builds the config from CLI flags, the environment and the `--config` file, in that order of precedence. */
export function hubConfig(flags: HubFlags, env: NodeJS.ProcessEnv = process.env): HubConfig {
  return parseOptions(hubOptions, hubSchema, { flags, env, file: flags.config === undefined ? undefined : readOptionsFile(hubOptions, flags.config) });
}

/**
 * The member cluster's credentials, held by the agent and never sent anywhere but to its own API
 * server: an in-cluster service account, or a kubeconfig (tokens, client certificates, exec plugins,
 * auth providers), loaded with @kubernetes/client-node so every kubeconfig feature works as it does
 * for kubectl, rather than hand-parsed.
 *
 * Per request the proxy asks for `current()`: the API server URL, a keep-alive connection pool whose
 * TLS settings are the cluster's (CA, client certificate, server name), and the Authorization value.
 * Both are re-derived from the KubeConfig at most once a second, so rotated service-account tokens,
 * exec-plugin tokens that expire and certificates that an exec plugin renews take effect without a
 * restart, while a busy proxy does not re-read files on every request. The pool is replaced only
 * when the TLS material actually changes, so connections to the API server are reused.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { WarrenError } from '../../shared/errors.js';

export type KubeSource = { readonly kind: 'in-cluster' } | { readonly kind: 'kubeconfig'; readonly path: string; readonly context?: string | undefined };

export interface UpstreamCredentials {
  /** The API server URL (a path prefix, if the kubeconfig has one, is kept). */
  readonly base: URL;
  readonly agent: http.Agent;
  /** `Bearer …` or `Basic …`; undefined when the client certificate alone authenticates. */
  readonly authorization: string | undefined;
}

/** What KubeConfig.applyToHTTPSOptions fills in (the subset that matters here). */
interface AppliedOptions extends https.RequestOptions {
  headers: Record<string, string>;
}

const REFRESH_MS = 1000;
/** Idle connections to the API server are closed after this long. */
const IDLE_MS = 60_000;

// The structural part of @kubernetes/client-node's KubeConfig this module uses (imported lazily:
// loading the library costs ~150 ms, which every other `warren` command should not pay).
interface KubeConfigLike {
  getCurrentCluster(): { server: string; proxyUrl?: string | undefined; name: string } | null;
  getCurrentUser(): { name: string } | null;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

export class KubeCredentials {
  private cached: { at: number; value: Promise<UpstreamCredentials> } | undefined;
  private pool: { fingerprint: string; agent: http.Agent } | undefined;

  private constructor(
    private readonly kc: KubeConfigLike,
    readonly server: URL,
  ) {}

  /** Loads and checks the configuration; throws WARREN_E_CONFIG at start-up when it cannot work. */
  static async load(source: KubeSource): Promise<KubeCredentials> {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    const where = source.kind === 'in-cluster' ? '--kube in-cluster' : `--kube ${source.path}`;
    try {
      if (source.kind === 'in-cluster') kc.loadFromCluster();
      else {
        kc.loadFromFile(source.path);
        if (source.context) kc.setCurrentContext(source.context);
      }
    } catch (err) {
      throw new WarrenError('WARREN_E_CONFIG', `${where}: cannot load the Kubernetes configuration: ${(err as Error).message}`);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster || !kc.getCurrentUser()) throw new WarrenError('WARREN_E_CONFIG', `${where}: the current context names no cluster or no user`);
    if (cluster.proxyUrl) throw new WarrenError('WARREN_E_CONFIG', `${where}: proxy-url in a kubeconfig is not supported by the agent; run the agent where it reaches the API server directly`);
    let server: URL;
    try {
      server = new URL(cluster.server);
    } catch {
      throw new WarrenError('WARREN_E_CONFIG', `${where}: cluster server "${cluster.server}" is not a URL (in-cluster needs KUBERNETES_SERVICE_HOST/PORT)`);
    }
    if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new WarrenError('WARREN_E_CONFIG', `${where}: cluster server must be https:// (or http://), not ${server.protocol}`);
    const creds = new KubeCredentials(kc, server);
    // Fail now, not on the first request: unreadable CA/cert/key files, a broken exec plugin.
    await creds.current().catch((err: unknown) => {
      throw new WarrenError('WARREN_E_CONFIG', `${where}: cannot apply the credentials: ${(err as Error).message}`);
    });
    return creds;
  }

  current(): Promise<UpstreamCredentials> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > REFRESH_MS) {
      const value = this.derive();
      this.cached = { at: now, value };
      value.catch(() => (this.cached?.value === value ? (this.cached = undefined) : undefined));
    }
    return this.cached.value;
  }

  /** After a 401 from the API server: the next request re-derives the credentials. */
  invalidate(): void {
    this.cached = undefined;
  }

  close(): void {
    this.pool?.agent.destroy();
  }

  private async derive(): Promise<UpstreamCredentials> {
    const opts = { headers: {} } as AppliedOptions;
    await this.kc.applyToHTTPSOptions(opts);
    const tls = {
      ca: opts.ca, cert: opts.cert, key: opts.key, pfx: opts.pfx, passphrase: opts.passphrase,
      rejectUnauthorized: opts.rejectUnauthorized, servername: opts.servername,
    };
    const fingerprint = createHash('sha256').update(JSON.stringify(tls, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v))).digest('hex');
    if (this.pool?.fingerprint !== fingerprint) {
      const common = { keepAlive: true, maxFreeSockets: 64, timeout: IDLE_MS, scheduling: 'lifo' as const };
      const agent = this.server.protocol === 'https:' ? new https.Agent({ ...common, ...definedOnly(tls) }) : new http.Agent(common);
      // The old pool is dropped, not destroyed: its in-flight requests (a watch, logs -f) finish, and
      // its idle connections close by themselves after IDLE_MS.
      this.pool = { fingerprint, agent };
    }
    const headerAuth = opts.headers.Authorization ?? opts.headers.authorization;
    const authorization = headerAuth ?? (opts.auth ? `Basic ${Buffer.from(opts.auth).toString('base64')}` : undefined);
    return { base: this.server, agent: this.pool.agent, authorization };
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}

/**
 * The agent's configuration: flags, defaults and the environment (HTTPS_PROXY, NO_PROXY,
 * WARREN_LOG_LEVEL), read here and nowhere else. Bad values fail at start-up.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { z } from 'zod';
import { WarrenError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { isLabel, parseListen, type HostPort } from '../hostPort.js';
import { isRoute } from '../patterns.js';
import type { KubeSource } from './kube/credentials.js';

export interface AgentConfig {
  readonly token: string | undefined;
  /** Overrides the hub URL from the join token / stored identity. */
  readonly hub: string | undefined;
  readonly name: string;
  readonly dataDir: string;
  readonly labels: Record<string, string>;
  readonly allow: readonly string[];
  readonly routes: readonly string[];
  readonly clusters: readonly string[];
  /** Where the member cluster's credentials come from (--kube); undefined: this agent serves no cluster API. */
  readonly kube: KubeSource | undefined;
  /** --health-listen: /healthz and /readyz on plain HTTP; undefined: off. */
  readonly healthListen: HostPort | undefined;
  readonly pingIntervalMs: number;
  readonly dialTimeoutMs: number;
  readonly reconnectMaxMs: number;
  readonly httpsProxy: string | undefined;
  readonly noProxy: string | undefined;
  readonly logLevel: string;
}

export interface AgentFlags {
  token?: string | undefined;
  tokenFile?: string | undefined;
  hub?: string | undefined;
  name?: string | undefined;
  dataDir?: string | undefined;
  labels?: string | undefined;
  allow?: string | undefined;
  route?: string | undefined;
  cluster?: string | undefined;
  kube?: string | undefined;
  kubeContext?: string | undefined;
  healthListen?: string | undefined;
  pingInterval?: string | undefined;
  dialTimeout?: string | undefined;
  reconnectMax?: string | undefined;
  logLevel?: string | undefined;
}

/** The first label of the host name, lower-cased, made into an RFC 1123 label. */
export function defaultAgentName(hostname = os.hostname()): string {
  const label = hostname.split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'agent';
}

function list(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list(text)) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z0-9._/-]{1,63}$/.test(key)) throw new WarrenError('WARREN_E_CONFIG', `--labels: "${item}" is not key=value`);
    out[key] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return out;
}

function ms(what: string, text: string): number {
  const v = parseDuration(text);
  if (v === undefined || v <= 0) throw new WarrenError('WARREN_E_CONFIG', `${what}: "${text}" is not a duration like 500ms, 10s, 5m`);
  return v;
}

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export function agentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  if (flags.token && flags.tokenFile) throw new WarrenError('WARREN_E_CONFIG', '--token and --token-file are alternatives: give one');
  let token = flags.token ?? env.WARREN_JOIN_TOKEN;
  if (flags.tokenFile) {
    try {
      token = fs.readFileSync(flags.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new WarrenError('WARREN_E_CONFIG', `--token-file ${flags.tokenFile}: ${(err as Error).message}`);
    }
  }
  const name = flags.name ?? defaultAgentName();
  if (!isLabel(name)) throw new WarrenError('WARREN_E_CONFIG', `--name "${name}" is not an RFC 1123 label (lower-case letters, digits, '-', at most 63)`);
  const routes = list(flags.route);
  for (const r of routes) if (!isRoute(r)) throw new WarrenError('WARREN_E_CONFIG', `--route "${r}" is neither a CIDR (10.20.0.0/16) nor a DNS suffix (.corp.internal)`);
  let clusters = list(flags.cluster);
  for (const c of clusters) if (!isLabel(c)) throw new WarrenError('WARREN_E_CONFIG', `--cluster "${c}" is not an RFC 1123 label`);
  const kube = kubeSource(flags, env);
  if (kube) {
    // One API server, one cluster name (several agents may share it): default, the agent's name.
    if (clusters.length > 1) throw new WarrenError('WARREN_E_CONFIG', '--kube serves one cluster: give one --cluster name (several agents may serve the same one)');
    if (clusters.length === 0) clusters = [name];
  }
  const healthText = flags.healthListen ?? (kube?.kind === 'in-cluster' ? DEFAULT_IN_CLUSTER_HEALTH : 'off');
  const healthListen = healthText === 'off' ? undefined : parseListen(healthText);
  if (healthText !== 'off' && !healthListen) throw new WarrenError('WARREN_E_CONFIG', `--health-listen "${healthText}" is not HOST:PORT (or off)`);
  const level = logLevel.safeParse(flags.logLevel ?? env.WARREN_LOG_LEVEL ?? 'info');
  if (!level.success) throw new WarrenError('WARREN_E_CONFIG', '--log-level must be trace, debug, info, warn, error, fatal or silent');
  if (flags.hub !== undefined && !/^https:\/\//.test(flags.hub)) throw new WarrenError('WARREN_E_CONFIG', '--hub must be an https:// URL');
  return {
    token,
    hub: flags.hub,
    name,
    dataDir: path.resolve(flags.dataDir ?? './warren-agent'),
    labels: parseLabels(flags.labels),
    allow: flags.allow !== undefined ? list(flags.allow) : ['localhost', '127.0.0.1', '::1', ...routes],
    routes,
    clusters,
    kube,
    healthListen,
    pingIntervalMs: ms('--ping-interval', flags.pingInterval ?? '10s'),
    dialTimeoutMs: ms('--dial-timeout', flags.dialTimeout ?? '10s'),
    reconnectMaxMs: ms('--reconnect-max', flags.reconnectMax ?? '30s'),
    httpsProxy: env.HTTPS_PROXY ?? env.https_proxy,
    noProxy: env.NO_PROXY ?? env.no_proxy,
    logLevel: level.data,
  };
}

/**
 * An agent in a pod (`--kube in-cluster`) serves its probes on :8081 unless told otherwise: the
 * manifests of src/kube/manifest.ts and the Helm chart probe that port without passing the flag.
 */
export const DEFAULT_IN_CLUSTER_HEALTH = '0.0.0.0:8081';

function kubeSource(flags: AgentFlags, env: NodeJS.ProcessEnv): KubeSource | undefined {
  const text = flags.kube?.trim();
  if (flags.kubeContext !== undefined && !text) throw new WarrenError('WARREN_E_CONFIG', '--kube-context goes with --kube KUBECONFIG');
  if (!text) return undefined;
  if (text === 'in-cluster') {
    if (flags.kubeContext !== undefined) throw new WarrenError('WARREN_E_CONFIG', '--kube-context goes with --kube KUBECONFIG, not in-cluster');
    if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
      throw new WarrenError('WARREN_E_CONFIG', '--kube in-cluster: KUBERNETES_SERVICE_HOST/PORT are not set; is this running in a pod? (else use --kube PATH-TO-KUBECONFIG)');
    }
    return { kind: 'in-cluster' };
  }
  const file = path.resolve(text);
  if (!fs.existsSync(file)) throw new WarrenError('WARREN_E_CONFIG', `--kube ${text}: no such kubeconfig file (or use --kube in-cluster)`);
  return { kind: 'kubeconfig', path: file, context: flags.kubeContext };
}

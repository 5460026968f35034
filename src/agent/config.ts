/**
 * The agent's configuration: every option declared once below (flag, default, help, environment,
 * validation), and the only place the agent reads the environment (WARREN_JOIN_TOKEN,
 * WARREN_LOG_LEVEL, WARREN_LOG_FORMAT, HTTPS_PROXY, NO_PROXY, KUBERNETES_SERVICE_*). Bad values fail at start-up.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import net from 'node:net';
import * as z from 'zod/mini';
import { canonicalIp, isLabel, parseListen } from '../shared/hostPort.js';
import { isRoute } from '../shared/patterns.js';
import { parseLabels } from '../shared/textLists.js';
import { commaList, configSchema, durationText, logFormatOption, logLevelOption, option, parseOptions, refuse, textAs } from '../shared/options.js';
import type { KubeSource } from './kube/credentials.js';

/** The first label of the host name, lower-cased, made into an RFC 1123 label. */
export function defaultAgentName(hostname = os.hostname()): string {
  const label = hostname.split('.')[0]!.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'agent';
}

/**
 * An agent in a pod (`--kube in-cluster`) serves its probes on :8081 unless told otherwise: the
 * manifests of src/kube/manifest.ts and the Helm chart probe that port without passing the flag.
 */
const DEFAULT_IN_CLUSTER_HEALTH = '0.0.0.0:8081';

/** A Kubernetes object name (RFC 1123 subdomain): what a Secret may be called. */
function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every(isLabel);
}

export const agentOptions = {
  tokenFile: option(z.string(), {
    arg: 'file',
    help: 'read the join token from a file, e.g. a mounted Kubernetes Secret (first start only; later starts use the identity in --data-dir)',
  }),
  token: option(z.string(), {
    arg: 'token',
    env: 'WARREN_JOIN_TOKEN',
    conflicts: 'tokenFile',
    help: 'join token on the command line: visible to every user in `ps`; prefer --token-file or the environment',
  }),
  hub: option(z.string().check(z.regex(/^https:\/\//, '--hub must be an https:// URL')), { arg: 'url', help: 'override the hub URL stored in the token or identity' }),
  name: option(textAs((s) => (isLabel(s) ? s : undefined), "is not an RFC 1123 label (lower-case letters, digits, '-', at most 63)"), {
    arg: 'name',
    help: 'agent name, an RFC 1123 label (default: the first label of the hostname)',
  }),
  dataDir: option(z.pipe(z.string(), z.transform((dir: string) => path.resolve(dir))), { arg: 'dir', default: './warren-agent', help: 'where the key, certificate and hub CA are kept (unless --identity-secret)' }),
  identitySecret: option(textAs((s) => (isDnsSubdomain(s) ? s : undefined), 'is not a Kubernetes object name (lower-case letters, digits, \'-\', \'.\', at most 253)'), {
    arg: 'name',
    help: 'in a pod: keep the identity in this Secret of the pod\'s namespace (under the key NAME.json), not in --data-dir, so a replaced pod comes back as the same agent; needs get and update on it',
  }),
  labels: option(
    z.pipe(
      z.string(),
      z.transform((text: string, ctx) => {
        try {
          return parseLabels(text);
        } catch (err) {
          return refuse(ctx, (err as Error).message);
        }
      }),
    ),
    { arg: 'k=v,...', default: '', help: 'labels shown in `warren agents ls`' },
  ),
  allow: option(commaList(), { arg: 'patterns', help: 'what this agent will dial: localhost, globs, CIDRs, HOST:PORTS, * (default: own host + routes)' }),
  route: option(commaList(isRoute, 'is neither a CIDR (10.20.0.0/16) nor a DNS suffix (.corp.internal)'), {
    arg: 'routes',
    default: '',
    help: 'CIDRs and DNS suffixes this agent serves, e.g. 10.20.0.0/16,.corp.internal',
  }),
  cluster: option(commaList(isLabel, 'is not an RFC 1123 label'), { arg: 'name', default: '', help: 'Kubernetes cluster name this agent serves (with --kube; default: the agent name)' }),
  sourceIp: option(commaList((s) => net.isIP(s) !== 0, 'is not an IP address'), {
    arg: 'ips',
    default: '',
    help: 'gateway: addresses of this host that egress rules dial from and ingress rules listen on (TCP only); each must be on a local interface',
  }),
  kube: option(z.string().check(z.trim()), { arg: 'source', help: 'serve this cluster\'s API: "in-cluster" (the pod\'s service account) or a kubeconfig path' }),
  kubeContext: option(z.string(), { arg: 'name', help: 'context of the --kube kubeconfig to use (default: its current-context)' }),
  healthListen: option(textAs((s) => (s === 'off' ? null : parseListen(s)), 'is not HOST:PORT (or off)'), {
    arg: 'addr',
    help: `serve /healthz and /readyz (tunnel up) on HOST:PORT, or "off" (default: ${DEFAULT_IN_CLUSTER_HEALTH} with --kube in-cluster, else off)`,
  }),
  pingInterval: option(durationText, { arg: 'd', default: '10s', help: 'keepalive interval; a silent hub is dropped after two' }),
  dialTimeout: option(durationText, { arg: 'd', default: '10s', help: 'how long to try to reach a target' }),
  reconnectMax: option(durationText, { arg: 'd', default: '30s', help: 'cap of the reconnect backoff' }),
  drainTimeout: option(durationText, { arg: 'd', default: '10s', help: 'on SIGTERM, how long open streams may finish while the hub sends new ones elsewhere; what is left is then reset' }),
  logLevel: logLevelOption,
  logFormat: logFormatOption,
  httpsProxy: option(z.string(), { envOnly: true, env: ['HTTPS_PROXY', 'https_proxy'], help: 'proxy for the connection to the hub' }),
  noProxy: option(z.string(), { envOnly: true, env: ['NO_PROXY', 'no_proxy'], help: 'hosts reached without the proxy' }),
  kubernetesServiceHost: option(z.string(), { envOnly: true, env: 'KUBERNETES_SERVICE_HOST', help: 'set in a pod; --kube in-cluster needs it' }),
  kubernetesServicePort: option(z.string(), { envOnly: true, env: 'KUBERNETES_SERVICE_PORT', help: 'set in a pod; --kube in-cluster needs it' }),
};

const agentSchema = configSchema(agentOptions, (f, ctx) => {
  const fail = (message: string) => refuse(ctx, message);
  let token = f.token;
  if (f.tokenFile !== undefined) {
    try {
      token = fs.readFileSync(f.tokenFile, 'utf8').trim();
    } catch (err) {
      return fail(`--token-file ${f.tokenFile}: ${(err as Error).message}`);
    }
  }
  const inPod = Boolean(f.kubernetesServiceHost && f.kubernetesServicePort);
  if (f.identitySecret !== undefined && !inPod) {
    return fail('--identity-secret: KUBERNETES_SERVICE_HOST/PORT are not set; is this running in a pod? (outside one the identity stays in --data-dir)');
  }
  let kube: KubeSource | undefined;
  if (f.kubeContext !== undefined && !f.kube) return fail('--kube-context goes with --kube KUBECONFIG');
  if (f.kube === 'in-cluster') {
    if (f.kubeContext !== undefined) return fail('--kube-context goes with --kube KUBECONFIG, not in-cluster');
    if (!inPod) {
      return fail('--kube in-cluster: KUBERNETES_SERVICE_HOST/PORT are not set; is this running in a pod? (else use --kube PATH-TO-KUBECONFIG)');
    }
    kube = { kind: 'in-cluster' };
  } else if (f.kube) {
    const file = path.resolve(f.kube);
    if (!fs.existsSync(file)) return fail(`--kube ${f.kube}: no such kubeconfig file (or use --kube in-cluster)`);
    kube = { kind: 'kubeconfig', path: file, context: f.kubeContext };
  }
  // Absent stays distinguishable from the default: a stored identity's name wins only over the default.
  const name = f.name ?? defaultAgentName();
  let clusters = f.cluster;
  if (kube) {
    // One API server, one cluster name (several agents may share it): default, the agent's name.
    if (clusters.length > 1) return fail('--kube serves one cluster: give one --cluster name (several agents may serve the same one)');
    if (clusters.length === 0) clusters = [name];
  }
  return {
    token,
    /** Overrides the hub URL from the join token / stored identity. */
    hub: f.hub,
    name,
    /** --name was given (not the hostname default): a stored identity with another name is worth a warning. */
    nameGiven: f.name !== undefined,
    dataDir: f.dataDir,
    /** --identity-secret: the Secret (in the pod's namespace) that holds the identity instead of the data dir. */
    identitySecret: f.identitySecret,
    labels: f.labels,
    allow: f.allow ?? ['localhost', '127.0.0.1', '::1', ...f.route],
    routes: f.route,
    clusters,
    /** --source-ip: the addresses this gateway dials from (egress) and listens on (ingress); checked at start. */
    sourceIps: [...new Set(f.sourceIp.map(canonicalIp))],
    /** Where the member cluster's credentials come from (--kube); undefined: this agent serves no cluster API. */
    kube,
    /** --health-listen: /healthz and /readyz on plain HTTP; undefined: off. */
    healthListen: f.healthListen === undefined ? (kube?.kind === 'in-cluster' ? parseListen(DEFAULT_IN_CLUSTER_HEALTH) : undefined) : (f.healthListen ?? undefined),
    pingIntervalMs: f.pingInterval,
    dialTimeoutMs: f.dialTimeout,
    reconnectMaxMs: f.reconnectMax,
    drainTimeoutMs: f.drainTimeout,
    httpsProxy: f.httpsProxy,
    noProxy: f.noProxy,
    logLevel: f.logLevel,
    logFormat: f.logFormat,
  };
});

export type AgentConfig = Readonly<z.output<typeof agentSchema>>;
export type AgentFlags = z.input<typeof agentSchema>;

export function agentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return parseOptions(agentOptions, agentSchema, { flags, env });
}

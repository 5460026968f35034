/**
 * `warren kubeconfig`: a kubeconfig for stock kubectl with one context per cluster, each at
 * https://HUB/k8s/clusters/NAME with the hub CA embedded. The token is the caller's own, or, with
 * --user (admins), a new access token issued for that user and groups.
 */
import { Option, type Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { hubRequest, jsonOrThrow } from '../../client/hubHttp.js';
import { isLabel } from '../../shared/hostPort.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { collect } from '../../shared/textLists.js';

interface KubeconfigFlags extends ClientFlags {
  cluster: string[];
  all?: boolean;
  user?: string;
  groups: string[];
  ttl: string;
  contextPrefix?: string;
  namespace?: string;
  output?: string;
}

interface ClusterRow {
  name: string;
  connected: boolean;
}

export function registerKubeconfig(program: Command): void {
  program
    .command('kubeconfig')
    .description('Print a kubeconfig with a context per cluster, reaching each through the hub (https://HUB/k8s/clusters/NAME).')
    .option('--cluster <name>', 'a cluster to include (repeatable, or comma-separated)', collect, [])
    .option('--all', 'every cluster the user may use')
    .option('--user <name>', 'admins: issue a new access token for this user instead of embedding your own')
    .option('--groups <a,b>', 'with --user: the user\'s groups', collect, [])
    .option('--ttl <d>', 'with --user: lifetime of the issued token', '8h')
    .option('--context-prefix <p>', 'prefix for context and cluster names (to merge kubeconfigs of several hubs)')
    .option('--namespace <ns>', 'default namespace of every context')
    // A kubeconfig is a document, not rows: yaml (what kubectl reads) or json, no table.
    .addOption(new Option('-o, --output <format>', 'kubeconfig format').choices(['yaml', 'json']).default('yaml'))
    .addHelpText('after', `
Examples:
  warren kubeconfig --all > ~/.kube/warren.yaml && kubectl --kubeconfig ~/.kube/warren.yaml --context alpha get pods
  warren kubeconfig --cluster alpha --cluster beta --user dev --groups team-a > dev.kubeconfig   # as an admin
Access needs a cluster grant (warren grant --user dev --cluster alpha); the member cluster's RBAC
then decides what the impersonated user may do.`)
    .action(async (o: KubeconfigFlags, cmd: Command) => {
      const flags = { ...(cmd.optsWithGlobals<ClientFlags>()), ...o };
      process.stdout.write(await buildKubeconfig(flags));
    });
}

async function buildKubeconfig(o: KubeconfigFlags): Promise<string> {
  if (o.all && o.cluster.length) throw new WarrenError('WARREN_E_USAGE', 'give --cluster NAME… or --all, not both');
  if (!o.all && o.cluster.length === 0) throw new WarrenError('WARREN_E_USAGE', 'give --cluster NAME (repeatable) or --all');
  if (!o.user && o.groups.length) throw new WarrenError('WARREN_E_USAGE', '--groups goes with --user');
  for (const c of o.cluster) if (!isLabel(c)) throw new WarrenError('WARREN_E_USAGE', `--cluster "${c}" is not a cluster name (an RFC 1123 label)`);
  if (o.user && !(parseDuration(o.ttl) ?? 0)) throw new WarrenError('WARREN_E_USAGE', `--ttl: "${o.ttl}" is not a duration like 30m, 8h, 7d`);
  const format = o.output ?? 'yaml';

  const { endpoint, token } = await resolveClient(o);
  const call = async <T>(method: string, path: string, body?: unknown) => jsonOrThrow<T>(await hubRequest(endpoint, method, path, { body, token }));

  const query = o.user ? `?${new URLSearchParams({ user: o.user, groups: o.groups.join(',') })}` : '';
  const available = await call<ClusterRow[]>('GET', `/api/v1/clusters${query}`);
  let clusters: string[];
  if (o.all) {
    clusters = available.map((c) => c.name);
    if (clusters.length === 0) throw new WarrenError('WARREN_E_NOT_FOUND', `no clusters ${o.user ? `user "${o.user}" may` : 'you may'} use: an agent serves one with --kube, and an admin grants it (warren grant --cluster NAME)`);
  } else {
    clusters = [...new Set(o.cluster)];
    const names = new Set(available.map((c) => c.name));
    for (const c of clusters) {
      if (!names.has(c)) process.stderr.write(`warning: cluster "${c}" is not served by any agent known to the hub, or not granted to ${o.user ? `user "${o.user}"` : 'you'}\n`);
    }
  }

  let user: string;
  let kubeToken: string;
  if (o.user) {
    const issued = await call<{ token: string; user: string }>('POST', '/api/v1/tokens', { user: o.user, groups: o.groups, ttl: o.ttl });
    user = issued.user;
    kubeToken = issued.token;
  } else {
    user = (await call<{ user: string }>('GET', '/api/v1/whoami')).user;
    kubeToken = token!;
  }
  // Loaded here: yaml is ~45 ms of a start, which every other command would pay (docs/benchmarks.md, finding 9).
  const [{ kubeconfigObject }, { default: YAML }] = await Promise.all([import('../../kube/kubeconfig.js'), import('yaml')]);
  const config = kubeconfigObject({
    hubUrl: endpoint.url.origin, caPem: endpoint.ca!, clusters, user, token: kubeToken,
    ...(o.contextPrefix ? { contextPrefix: o.contextPrefix } : {}), ...(o.namespace ? { namespace: o.namespace } : {}),
  });
  return format === 'json' ? JSON.stringify(config, null, 2) + '\n' : YAML.stringify(config, { lineWidth: 0 });
}

/**
 * `warren agent manifest --cluster NAME`: the YAML that runs agents for cluster NAME inside that
 * cluster (src/kube/manifest.ts: namespace, least-privilege impersonation role, the join token in a
 * Secret, a 2-replica StatefulSet whose agents keep their identities in a Secret), with a join token
 * created for it through the hub API.
 *
 *   warren agent manifest --cluster alpha | kubectl --context alpha apply -f -
 *
 * Each replica joins once, on its first start, and keeps its identity in the Secret warren-agent-identity:
 * restarts and rollouts need no token. The token stays usable (`--token-uses`, default unlimited;
 * `--token-ttl`, default 365d) so that replicas added later can join. Revoke it with `warren join-token
 * rm ID` (printed on stderr) once the agents run, if the StatefulSet will not grow.
 * The token allows cluster NAME (`--clusters NAME`) and nothing else: an agent joining with it cannot
 * serve another cluster or any route. A `--join-token` given instead must allow the cluster the same way.
 */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { hubRequest, jsonOrThrow } from '../../client/hubHttp.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';

interface ManifestFlags extends ClientFlags {
  cluster: string;
  namespace: string;
  image?: string;
  replicas: string;
  agentHubUrl?: string;
  tokenUses: string;
  tokenTtl: string;
  joinToken?: string;
}

/** Adds `manifest` under the `agent` command. */
export function registerAgentManifest(agent: Command): void {
  agent
    .command('manifest')
    .description('Print the Kubernetes YAML that runs agents for a cluster inside it (creates a join token for it).')
    .requiredOption('--cluster <name>', 'the cluster name the agents serve (what kubeconfigs and grants call it)')
    .option('--namespace <ns>', 'namespace of the agents', 'warren-system')
    .option('--image <ref>', 'agent image (default: ghcr.io/warren/warren:VERSION)')
    .option('--replicas <n>', 'agents for the cluster (they share the load and fail over)', '2')
    .option('--agent-hub-url <url>', 'hub URL the agents dial, if not the one in the join token')
    .option('--token-uses <n>', 'how many times the join token may be used (once per replica, on its first start; "unlimited" lets replicas added later join)', 'unlimited')
    .option('--token-ttl <d>', 'how long the join token stays valid', '365d')
    .option('--join-token <token>', 'use this join token instead of creating one (made with: warren join-token create --clusters NAME)')
    // The `agent` command is self-configured (its own --hub/--token mean other things), so the client
    // options are declared here.
    .option('--hub <url>', 'hub URL (env WARREN_HUB; saved by `warren login`)')
    .option('--token <token>', 'your access token (env WARREN_TOKEN; saved by `warren login`)')
    .option('--ca-fingerprint <pin>', 'sha256:… pin of the hub CA (env WARREN_CA_FINGERPRINT)')
    .option('--ca-file <file>', 'PEM file of the hub CA, instead of a pin')
    .addHelpText('after', `
Examples:
  warren agent manifest --cluster alpha | kubectl --context alpha apply -f -
  warren agent manifest --cluster alpha --image registry.local/warren:0.1.0 --replicas 3 > warren-agent.yaml`)
    .action(async (o: ManifestFlags) => {
      process.stdout.write(await buildManifest(o));
    });
}

async function buildManifest(o: ManifestFlags): Promise<string> {
  const replicas = Number(o.replicas);
  if (!Number.isInteger(replicas) || replicas < 1) throw new WarrenError('WARREN_E_USAGE', '--replicas must be a whole number ≥ 1');
  const uses = o.tokenUses === 'unlimited' ? null : Number(o.tokenUses);
  if (uses !== null && (!Number.isInteger(uses) || uses < 1)) throw new WarrenError('WARREN_E_USAGE', '--token-uses must be a whole number ≥ 1 or "unlimited"');
  if (!(parseDuration(o.tokenTtl) ?? 0)) throw new WarrenError('WARREN_E_USAGE', `--token-ttl: "${o.tokenTtl}" is not a duration like 30d`);
  const options = {
    cluster: o.cluster, namespace: o.namespace, replicas,
    ...(o.image ? { image: o.image } : {}), ...(o.agentHubUrl ? { hubUrl: o.agentHubUrl } : {}),
  };
  const { agentManifest } = await import('../../kube/manifest.js'); // yaml: loaded by this command alone
  // Validate everything (names, image, URL) before a token exists that nobody will use.
  agentManifest({ ...options, joinToken: 'validate-only' });
  let joinToken = o.joinToken;
  if (!joinToken) {
    const { endpoint, token } = await resolveClient(o);
    const out = jsonOrThrow<{ token: string; id: string; expiresAt: string }>(
      await hubRequest(endpoint, 'POST', '/api/v1/join-tokens', { token, body: { ttl: o.tokenTtl, uses, labels: { cluster: o.cluster }, clusters: [o.cluster] } }),
    );
    joinToken = out.token;
    process.stderr.write(`created join token ${out.id} (uses: ${uses ?? 'unlimited'}, expires ${out.expiresAt}); revoke it with: warren join-token rm ${out.id}\n`);
  }
  return agentManifest({ ...options, joinToken });
}

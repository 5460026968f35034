/**
 * `warren version`: this client's version and the hub's (GET /api/v1/version, no token needed), like
 * `kubectl version`. The client's is printed even when the hub cannot be asked; then the command says
 * why and exits 1. Without any hub configured there is nothing to ask: the client's alone, exit 0.
 */
import type { Command } from 'commander';
import { hubRequest, jsonOrThrow } from '../../client/hubHttp.js';
import { asWarrenError } from '../../shared/errors.js';
import { VERSION } from '../../shared/version.js';
import { configuredHub, resolveClient, type ClientFlags } from '../clientConfig.js';
import { examples, outputOption } from '../conventions.js';
import { parseFormat, render } from '../output.js';

interface VersionView {
  readonly client: { readonly version: string };
  /** null: no hub configured, or it could not be asked (`error` says why). */
  readonly hub: { readonly url: string; readonly version: string } | null;
  readonly error?: string;
}

async function hubVersion(flags: ClientFlags): Promise<VersionView> {
  const client = { version: VERSION };
  let url: string | undefined;
  try {
    url = configuredHub(flags);
    if (url === undefined) return { client, hub: null };
    const { endpoint } = await resolveClient(flags, { needToken: false });
    const { version } = jsonOrThrow<{ version: string }>(await hubRequest(endpoint, 'GET', '/api/v1/version', { timeoutMs: 10_000 }));
    return { client, hub: { url: endpoint.url.origin, version } };
  } catch (err) {
    return { client, hub: null, error: `cannot ask the hub${url ? ` at ${url}` : ''} for its version: ${asWarrenError(err).message}` };
  }
}

export function registerVersion(program: Command): void {
  const cmd = program
    .command('version')
    .description("Print this client's version and the hub's.")
    .addOption(outputOption())
    .action(async (_o, c: Command) => {
      const o = c.optsWithGlobals<ClientFlags & { output?: string }>();
      const format = parseFormat(o.output);
      const view = await hubVersion(o);
      if (format !== 'table') process.stdout.write(render(view, format, []));
      else {
        const hub = view.hub ? `${view.hub.version} (${view.hub.url})` : view.error ? 'unknown' : 'no hub configured (pass --hub, set WARREN_HUB, or run `warren login`)';
        process.stdout.write(`Client version: ${view.client.version}\nHub version:    ${hub}\n`);
      }
      if (view.error) {
        process.stderr.write(`warren: ${view.error}\n`);
        process.exitCode = 1;
      }
    });
  examples(cmd, ['warren version', 'warren version -o json | jq -r .hub.version', 'warren --version                    # the client only, no hub asked']);
}

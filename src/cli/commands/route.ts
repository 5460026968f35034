/** `warren route explain HOST:PORT`: which agent would serve a target, by which rule, and whether a user may. */
import type { Command } from 'commander';
import { hubRequest, jsonOrThrow } from '../../client/hubHttp.js';
import type { RouteExplanation } from '../../hub/routeExplain.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { connectTarget } from './connect.js';
import { parseFormat, render } from '../output.js';
import { outputOption } from '../conventions.js';
import { formatHostPort } from '../../shared/hostPort.js';

type Opts = ClientFlags & { output?: string; user?: string; groups?: string };

export function registerRoute(program: Command): void {
  program
    .command('route')
    .description('How the hub routes targets to agents.')
    .command('explain <target>')
    .description('Dry run: which agent(s) would serve HOST:PORT, by which rule, and whether the user may reach it.')
    .option('--user <name>', 'admins: judge this user (default: you); groups come from their live tokens unless --groups')
    .option('--groups <a,b>', "judge with these groups (yours, or any for admins) instead of the user's own")
    .addOption(outputOption())
    .addHelpText('after', `
Rules (first match wins): 1 HOST.<agent>.warren, 2 an agent's name, 3 an advertised route (longest
match; agents with the same route share the load), 4 refused. Nothing is dialled. Any user may ask
about themselves; only admins may ask about another user (else 403 WARREN_E_FORBIDDEN).

Examples:
  warren route explain 10.20.0.5:8080
  warren route explain db.prod.alpha.warren:5432 --user ana -o json
  warren route explain 10.96.0.1:443 --user uds --groups warren:uds   # the --connect-uds door`)
    .action(async (target: string, _o, cmd: Command) => {
      const hp = connectTarget(target);
      const o = cmd.optsWithGlobals<Opts>();
      const { endpoint, token } = await resolveClient(o);
      const q = new URLSearchParams({ target: formatHostPort(hp) });
      if (o.user) q.set('user', o.user);
      if (o.groups !== undefined) q.set('groups', o.groups);
      const e = jsonOrThrow<RouteExplanation>(await hubRequest(endpoint, 'GET', `/api/v1/routes/explain?${q}`, { token }));
      const format = parseFormat(o.output);
      process.stdout.write(format === 'table' ? describe(e) : render(e, format, []));
    });
}

function describe(e: RouteExplanation): string {
  const lines = [
    `target:  ${e.target}`,
    `rule:    ${e.rule} (${e.ruleName})${e.route ? `, route ${e.route}` : ''}${e.dialHost ? `; the agent dials ${e.dialHost}` : ''}`,
    `agent:   ${e.agent ?? '-'}`,
    `user:    ${e.user}${e.groups.length ? ` (groups ${e.groups.join(', ')}; from ${e.groupsFrom})` : ''}`,
    `access:  ${e.allowed ? 'allowed by' : 'denied:'} ${e.grantText}`,
    `result:  ${e.refusal ? `refused: ${e.refusal.message} [${e.refusal.code}]` : `would connect through ${e.agent}`}`,
  ];
  if (e.candidates.length > 0) {
    lines.push('', render([...e.candidates], 'table', [
      { header: 'CANDIDATE', get: (c) => c.agent },
      { header: 'CONNECTED', get: (c) => (c.connected ? 'yes' : 'no') },
      { header: 'ROUTE', get: (c) => c.route },
      { header: 'SELECTED', get: (c) => (c.selected ? 'yes' : 'no') },
      { header: 'STREAMS', get: (c) => c.streamsOpen },
      { header: 'GRANT', get: (c) => (c.grant === null ? 'no grant' : c.grant === 'admin' ? 'admin' : c.grant.id) },
    ]).trimEnd());
  }
  return lines.join('\n') + '\n';
}

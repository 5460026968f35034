/** `warren forwards create|ls|show|rm`: TCP forwards on the hub or an agent (admin API /api/v1/forwards). */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { hubRequest, jsonOrThrow } from '../../client/hubHttp.js';
import { parseHostPort } from '../../shared/hostPort.js';
import { isForwardName, parseAllowFrom, parseEntry } from '../../shared/forwardSpec.js';
import { resolveClient, type ClientFlags } from '../clientConfig.js';
import { parseFormat, render, type Column } from '../output.js';
import { collect } from '../../shared/textLists.js';
import { outputOption } from '../conventions.js';

type Opts = ClientFlags & { output?: string };

export interface ForwardRow {
  name: string; kind: string; gateway: string | null; sourceIp: string | null; owner: string | null; entry: string; agent: string | null; target: string; allowFrom: string[]; listening: boolean; address: string | null; heldBy: string | null;
  openStreams: number; connections: number; bytesIn: number; bytesOut: number; lastError: { code: string; message: string; time: string } | null;
}

const columns: Column<ForwardRow>[] = [
  { header: 'NAME', get: (f) => f.name },
  { header: 'KIND', get: (f) => f.kind },
  { header: 'ENTRY', get: (f) => f.entry },
  { header: 'TARGET', get: (f) => f.target },
  { header: 'LISTENING', get: (f) => (f.listening ? `yes ${f.address ?? ''}`.trim() : 'no') },
  // Several hubs: only the hub named here listens (or pushes the agent's listeners); LISTENING is the answering hub's view.
  { header: 'HUB', get: (f) => f.heldBy },
  { header: 'STREAMS', get: (f) => f.openStreams },
  { header: 'IN', get: (f) => f.bytesIn },
  { header: 'OUT', get: (f) => f.bytesOut },
  { header: 'ALLOW-FROM', get: (f) => f.allowFrom },
  { header: 'LAST-ERROR', get: (f) => (f.lastError ? `${f.lastError.message} [${f.lastError.code}]` : null) },
];

export async function call<T>(cmd: Command, method: string, path: string, body?: unknown): Promise<T> {
  const { endpoint, token } = await resolveClient(cmd.optsWithGlobals<Opts>());
  return jsonOrThrow<T>(await hubRequest(endpoint, method, path, { body, token }));
}

function print<T>(cmd: Command, data: T | T[]): void {
  process.stdout.write(render(data as ForwardRow | ForwardRow[], parseFormat(cmd.optsWithGlobals<Opts>().output), columns));
}

export function registerForwards(program: Command): void {
  const forwards = program.command('forwards').description('TCP forwards: a port on the hub or on an agent that leads to a target (like ssh -R).');
  forwards
    .command('create <name>')
    .description('Create a forward; it listens within a second and comes back after hub restarts.')
    .requiredOption('--entry <entry>', 'where it listens: hub:[ADDR:]PORT or AGENT:[ADDR:]PORT (port 0: a free port, kept)')
    .requiredOption('--target <host:port>', 'where connections go, addressed like any door (node1:22, db.alpha.warren:5432, 10.20.0.5:80)')
    .option('--allow-from <cidr,...>', 'only these client CIDRs or addresses may connect (default: anyone who can reach the entry)', collect, [])
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  warren forwards create pg --entry hub:15432 --target db.prod.alpha.warren:5432 --allow-from 10.0.0.0/8
  warren forwards create web --entry hub:127.0.0.1:8080 --target node1:80
  warren forwards create api --entry edge:6443 --target kube-apiserver.beta.warren:6443   # listens on agent "edge"`)
    .action(async (name: string, o: { entry: string; target: string; allowFrom: string[] }, cmd: Command) => {
      if (!isForwardName(name)) throw new WarrenError('WARREN_E_USAGE', `forward name "${name}" is not an RFC 1123 label (lower-case letters, digits, '-')`);
      const entry = parseEntry(o.entry);
      if ('error' in entry) throw new WarrenError('WARREN_E_USAGE', `--entry: ${entry.error}`);
      if (!parseHostPort(o.target)) throw new WarrenError('WARREN_E_USAGE', `--target "${o.target}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:22)`);
      const allow = parseAllowFrom(o.allowFrom);
      if ('error' in allow) throw new WarrenError('WARREN_E_USAGE', `--allow-from: ${allow.error}`);
      const f = await call<ForwardRow>(cmd, 'POST', '/api/v1/forwards', { name, entry: o.entry, target: o.target, allowFrom: allow });
      if (parseFormat(cmd.optsWithGlobals<Opts>().output) !== 'table') return print(cmd, f);
      if (f.listening) process.stdout.write(`forward ${f.name} listening on ${f.agent ? `agent ${f.agent} at ` : ''}${f.address} → ${f.target}\n`);
      else process.stdout.write(`forward ${f.name} created, not listening yet: ${f.lastError?.message ?? 'unknown reason'}\n`);
    });
  forwards
    .command('ls')
    .description('List forwards (egress and ingress rules too) with their state: listening, open streams, bytes in/out, last error.')
    .addHelpText('after', `
Examples:
  warren forwards ls
  warren forwards ls -o json`)
    .action(async (_o, cmd: Command) => print(cmd, await call<ForwardRow[]>(cmd, 'GET', '/api/v1/forwards')));
  forwards
    .command('show <name>')
    .description('Show one forward.')
    .addHelpText('after', `
Examples:
  warren forwards show pg
  warren forwards show pg -o json`)
    .action(async (name: string, _o, cmd: Command) => print(cmd, await call<ForwardRow>(cmd, 'GET', `/api/v1/forwards/${encodeURIComponent(name)}`)));
  forwards
    .command('rm <name>')
    .description('Delete a forward: its listener closes at once and its connections are cut.')
    .addHelpText('after', `
Examples:
  warren forwards rm pg`)
    .action(async (name: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/forwards/${encodeURIComponent(name)}`);
      process.stdout.write(`forward ${name} deleted\n`);
    });
}

/**
 * `warren egress create|ls|show|rm` and `warren ingress create|ls|show|rm`: static source addresses
 * through a gateway agent (design §6; admin API /api/v1/egress and /api/v1/ingress). TCP only.
 */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { isLabel, parseHostPort } from '../../shared/hostPort.js';
import { isForwardName, parseAllowFrom, parseEntry } from '../../shared/forwardSpec.js';
import { parseFormat, render, type Column } from '../output.js';
import { examples, outputOption } from '../conventions.js';
import { collect } from '../../shared/textLists.js';
import { call, type ForwardRow } from './forwards.js';

const state: Column<ForwardRow>[] = [
  { header: 'LISTENING', get: (f) => (f.listening ? `yes ${f.address ?? ''}`.trim() : 'no') },
  { header: 'STREAMS', get: (f) => f.openStreams },
  { header: 'IN', get: (f) => f.bytesIn },
  { header: 'OUT', get: (f) => f.bytesOut },
  { header: 'LAST-ERROR', get: (f) => (f.lastError ? `${f.lastError.message} [${f.lastError.code}]` : null) },
];
const egressColumns: Column<ForwardRow>[] = [
  { header: 'NAME', get: (f) => f.name },
  { header: 'ENTRY', get: (f) => f.entry },
  { header: 'GATEWAY', get: (f) => f.gateway },
  { header: 'SOURCE-IP', get: (f) => f.sourceIp },
  { header: 'TARGET', get: (f) => f.target },
  ...state,
];
const ingressColumns: Column<ForwardRow>[] = [
  { header: 'NAME', get: (f) => f.name },
  { header: 'GATEWAY', get: (f) => f.gateway },
  { header: 'LISTEN', get: (f) => f.entry.slice(f.entry.indexOf(':') + 1) },
  { header: 'TARGET', get: (f) => f.target },
  ...state,
];

const TCP_ONLY = 'TCP only: UDP is not carried (yet).';

type Opts = { output?: string };

function print(cmd: Command, data: ForwardRow | ForwardRow[], columns: Column<ForwardRow>[]): void {
  process.stdout.write(render(data, parseFormat(cmd.optsWithGlobals<Opts>().output), columns));
}

function usage(message: string): WarrenError {
  return new WarrenError('WARREN_E_USAGE', message);
}

function checkCommon(name: string, gateway: string, target: string, allowFrom: string[]): string[] {
  if (!isForwardName(name)) throw usage(`rule name "${name}" is not an RFC 1123 label (lower-case letters, digits, '-')`);
  if (!isLabel(gateway)) throw usage(`--gateway "${gateway}" is not an agent name`);
  if (!parseHostPort(target)) throw usage(`--target "${target}" is not HOST:PORT (IPv6 in brackets: [fd00::1]:5432)`);
  const allow = parseAllowFrom(allowFrom);
  if ('error' in allow) throw usage(`--allow-from: ${allow.error}`);
  return allow;
}

function report(cmd: Command, r: ForwardRow, columns: Column<ForwardRow>[], line: string): void {
  if (parseFormat(cmd.optsWithGlobals<Opts>().output) !== 'table') return print(cmd, r, columns);
  process.stdout.write(r.listening ? `${line}\n` : `${r.kind} rule ${r.name} created, not listening yet: ${r.lastError?.message ?? 'unknown reason'}\n`);
}

function lsShowRm(group: Command, kind: 'egress' | 'ingress', columns: Column<ForwardRow>[]): void {
  examples(group.command('ls').description(`List ${kind} rules with their live state: listening, open streams, bytes in/out, last error.`), [`warren ${kind} ls`, `warren ${kind} ls -o json`])
    .action(async (_o, cmd: Command) => print(cmd, await call<ForwardRow[]>(cmd, 'GET', `/api/v1/${kind}`), columns));
  examples(group.command('show <name>').description(`Show one ${kind} rule.`), [`warren ${kind} show NAME`, `warren ${kind} show NAME -o json`])
    .action(async (name: string, _o, cmd: Command) => print(cmd, await call<ForwardRow>(cmd, 'GET', `/api/v1/${kind}/${encodeURIComponent(name)}`), columns));
  examples(group.command('rm <name>').description(`Delete an ${kind} rule: its listener closes at once and its connections are cut.`), [`warren ${kind} rm NAME`])
    .action(async (name: string, _o, cmd: Command) => {
      await call(cmd, 'DELETE', `/api/v1/${kind}/${encodeURIComponent(name)}`);
      process.stdout.write(`${kind} rule ${name} deleted\n`);
    });
}

export function registerEgress(program: Command): void {
  const egress = program
    .command('egress')
    .description(`Egress rules: connections to an entry (a hub port or an agent port) reach a target from a gateway's static source address. ${TCP_ONLY}`);
  egress
    .command('create <name>')
    .description(`Create an egress rule; it listens within a second and comes back after restarts. ${TCP_ONLY}`)
    .requiredOption('--gateway <agent>', 'the gateway agent that dials the target (started with --source-ip)')
    .requiredOption('--target <host:port>', 'the external server, as the gateway reaches it (its --allow must permit it)')
    .requiredOption('--source-ip <ip>', 'the gateway address the target sees as the client')
    .requiredOption('--entry <entry>', 'where clients connect: hub:[ADDR:]PORT or AGENT:[ADDR:]PORT (e.g. the cluster agent, fronted by a Service)')
    .option('--from <cidr,...>', 'only these client CIDRs or addresses may use the entry (default: anyone who can reach it)', collect, [])
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  # pods reach the database from 10.9.0.5 through agent "cluster" (port 15432) and gateway "gw":
  warren egress create db-a --gateway gw --target 10.1.0.9:5432 --source-ip 10.9.0.5 --entry cluster:15432
  # another entry, another source address, same target:
  warren egress create db-b --gateway gw --target 10.1.0.9:5432 --source-ip 10.9.0.6 --entry cluster:15433 --from 10.244.1.0/24
  warren egress ls -o json

${TCP_ONLY} See docs/static-egress-ip.md.`)
    .action(async (name: string, o: { gateway: string; target: string; sourceIp: string; entry: string; from: string[] }, cmd: Command) => {
      const allowFrom = checkCommon(name, o.gateway, o.target, o.from);
      const entry = parseEntry(o.entry);
      if ('error' in entry) throw usage(`--entry: ${entry.error}`);
      const r = await call<ForwardRow>(cmd, 'POST', '/api/v1/egress', { name, gateway: o.gateway, target: o.target, sourceIp: o.sourceIp, entry: o.entry, allowFrom });
      report(cmd, r, egressColumns, `egress rule ${r.name}: ${r.agent ? `agent ${r.agent} at ` : 'hub at '}${r.address} → ${r.target} from ${r.sourceIp} via ${r.gateway}`);
    });
  lsShowRm(egress, 'egress', egressColumns);

  const ingress = program
    .command('ingress')
    .description(`Ingress rules: a gateway listens on one of its source addresses and carries connections to a target behind another agent. ${TCP_ONLY}`);
  ingress
    .command('create <name>')
    .description(`Create an ingress rule; it listens within a second and comes back after restarts. ${TCP_ONLY}`)
    .requiredOption('--gateway <agent>', 'the gateway agent that listens (started with --source-ip)')
    .requiredOption('--listen <source-ip:port>', 'the gateway address and port external servers connect to')
    .requiredOption('--target <host:port>', 'where connections go, addressed like any door (web.ns1.svc.cluster.local.cluster.warren:80)')
    .option('--from <cidr,...>', 'only these client CIDRs or addresses may connect (default: anyone who can reach it)', collect, [])
    .addOption(outputOption())
    .addHelpText('after', `
Examples:
  # the external server connects to 10.9.0.5:8080 and reaches service web in cluster "cluster":
  warren ingress create web --gateway gw --listen 10.9.0.5:8080 --target web.ns1.svc.cluster.local.cluster.warren:80
  warren ingress ls

${TCP_ONLY} See docs/static-egress-ip.md.`)
    .action(async (name: string, o: { gateway: string; listen: string; target: string; from: string[] }, cmd: Command) => {
      const allowFrom = checkCommon(name, o.gateway, o.target, o.from);
      if (!parseHostPort(o.listen)) throw usage(`--listen "${o.listen}" is not SOURCE_IP:PORT`);
      const r = await call<ForwardRow>(cmd, 'POST', '/api/v1/ingress', { name, gateway: o.gateway, listen: o.listen, target: o.target, allowFrom });
      report(cmd, r, ingressColumns, `ingress rule ${r.name}: gateway ${r.gateway} at ${r.address} → ${r.target}`);
    });
  lsShowRm(ingress, 'ingress', ingressColumns);
}

/**
 * The declarative form of egress and ingress rules (admin API /api/v1/externalservices):
 *
 *   warren apply -f FILE|-                         ExternalService YAML, several documents allowed
 *   warren get externalservices [NAME] [-o yaml]   the objects back (yaml applies again as it is)
 *   warren delete externalservice NAME             the object and every rule it made
 *
 * The file is read and checked here first, so a malformed document is a usage error (exit 2) before
 * anything is sent; the hub checks again and applies all or nothing. TCP only.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import type { ExternalService } from '../../shared/externalService.js';
import { ENTRY_AGENT_ANNOTATION } from '../../shared/forwardSpec.js';
import { parseFormat, render, type Column } from '../output.js';
import { examples, outputOption } from '../conventions.js';
import { call, type ForwardRow } from './forwards.js';

/** The words `get` and `delete` take for the one kind they know. */
const KIND_WORDS = new Set(['externalservice', 'externalservices', 'es']);

interface ServiceRow {
  name: string;
  manifest: ExternalService;
  rules: ForwardRow[];
  createdAt: string;
  createdBy: string;
}

interface ApplyResult {
  name: string;
  result: 'created' | 'configured' | 'unchanged';
  rules: ForwardRow[];
}

const columns: Column<ServiceRow>[] = [
  { header: 'NAME', get: (s) => s.name },
  { header: 'TARGET-IP', get: (s) => s.manifest.spec.targetIP },
  { header: 'ENTRY-AGENT', get: (s) => s.manifest.metadata.annotations?.[ENTRY_AGENT_ANNOTATION] },
  { header: 'SOURCES', get: (s) => s.manifest.spec.sources.map((x) => `${x.service.namespace}/${x.service.name}=${x.sourceIP}`) },
  { header: 'PORTS', get: (s) => s.manifest.spec.ports.map((p) => `${p.targetPort}→${p.port}/${p.protocol}`) },
  { header: 'RULES', get: (s) => `${s.rules.filter((r) => r.listening).length}/${s.rules.length} listening` },
  { header: 'LAST-ERROR', get: (s) => s.rules.map((r) => (r.lastError ? `${r.name}: ${r.lastError.message} [${r.lastError.code}]` : '')).filter(Boolean) },
];

type Opts = { output?: string; filename: string };

function usage(message: string): WarrenError {
  return new WarrenError('WARREN_E_USAGE', message);
}

function kindWord(word: string): void {
  if (!KIND_WORDS.has(word)) throw usage(`unknown resource type "${word.slice(0, 64)}": this command takes externalservices (or externalservice, es)`);
}

function readInput(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw usage(`-f ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function registerApply(program: Command): void {
  examples(
    program
      .command('apply')
      .description(`Apply ExternalService objects (k8s-ext-connector's YAML): each becomes egress and ingress rules through the gateway that owns its source IPs; all or nothing, live once the command returns. Each document names the agent in its sources' cluster in the annotation ${ENTRY_AGENT_ANNOTATION} (docs/static-egress-ip.md). TCP only.`)
      .requiredOption('-f, --filename <file>', 'the YAML file, or - for stdin; several documents separated by ---')
      .addOption(outputOption()),
    [
      'warren apply -f db.yaml',
      'cat db.yaml | warren apply -f -',
      'warren get externalservices -o yaml > all.yaml && warren apply -f all.yaml   # unchanged',
    ],
  ).action(async (o: Opts, cmd: Command) => {
    const source = o.filename === '-' ? 'stdin' : o.filename;
    const { parseExternalServices } = await import('../../shared/externalService.js'); // yaml and zod: loaded by these commands alone
    const items = parseExternalServices(readInput(o.filename), source);
    const { applied } = await call<{ applied: ApplyResult[] }>(cmd, 'POST', '/api/v1/externalservices', { items });
    const format = parseFormat(cmd.optsWithGlobals<Opts>().output);
    if (format !== 'table') return void process.stdout.write(render(applied, format, []));
    for (const a of applied) {
      const count = (kind: string) => a.rules.filter((r) => r.kind === kind).length;
      const waiting = a.rules.filter((r) => !r.listening).map((r) => `${r.name}: ${r.lastError?.message ?? 'not listening yet'}`);
      process.stdout.write(`externalservice/${a.name} ${a.result} (${count('egress')} egress, ${count('ingress')} ingress rules${waiting.length ? `; not listening: ${waiting.join('; ')}` : ''})\n`);
    }
  });

  examples(
    program
      .command('get <kind> [name]')
      .description('Show ExternalService objects with their rules\' state; -o yaml gives the documents `warren apply -f` takes back.')
      .addOption(outputOption()),
    ['warren get externalservices', 'warren get externalservice db -o yaml', 'warren get es -o json'],
  ).action(async (kind: string, name: string | undefined, _o, cmd: Command) => {
    kindWord(kind);
    const format = parseFormat(cmd.optsWithGlobals<Opts>().output);
    const rows = name === undefined
      ? await call<ServiceRow[]>(cmd, 'GET', '/api/v1/externalservices')
      : [await call<ServiceRow>(cmd, 'GET', `/api/v1/externalservices/${encodeURIComponent(name)}`)];
    const manifests = rows.map((r) => r.manifest);
    if (format === 'yaml') return void process.stdout.write((await import('../../shared/externalService.js')).formatExternalServices(manifests));
    if (format === 'json') return void process.stdout.write(JSON.stringify(name === undefined ? manifests : manifests[0], null, 2) + '\n');
    process.stdout.write(render(rows, 'table', columns));
  });

  examples(
    program.command('delete <kind> <name>').description('Delete an ExternalService object and every rule it made: their listeners close before the command returns.'),
    ['warren delete externalservice db'],
  ).action(async (kind: string, name: string, _o, cmd: Command) => {
    kindWord(kind);
    await call(cmd, 'DELETE', `/api/v1/externalservices/${encodeURIComponent(name)}`);
    process.stdout.write(`externalservice/${name} deleted\n`);
  });
}

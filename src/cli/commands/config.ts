/**
 * `warren config get-contexts|use-context|current-context`: the hubs `warren login` saved, one context
 * each, like kubectl's. Nothing here talks to a hub, and no token is ever printed.
 */
import type { Command } from 'commander';
import { WarrenError } from '../../shared/errors.js';
import { loginFilePath, readLoginFile, writeLoginFile } from '../clientConfig.js';
import { examples, outputOption } from '../conventions.js';
import { parseFormat, render } from '../output.js';

interface ContextRow {
  readonly name: string;
  readonly current: boolean;
  readonly hub: string;
  readonly caFingerprint: string;
}

function contextRows(): ContextRow[] {
  const saved = readLoginFile();
  return Object.entries(saved.contexts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, c]) => ({ name, current: name === saved.currentContext, hub: c.hub, caFingerprint: c.caPin }));
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('The saved logins (contexts): list them, show or switch the current one.');

  examples(
    config
      .command('get-contexts')
      .description('List the saved contexts; * marks the current one.')
      .addOption(outputOption())
      .action((o: { output?: string }) => {
        const format = parseFormat(o.output);
        const rows = contextRows();
        if (format !== 'table') return void process.stdout.write(render(rows, format, []));
        if (rows.length === 0) return void process.stdout.write(`No contexts saved in ${loginFilePath()}: \`warren login --hub URL --token TOKEN --ca-fingerprint PIN\` saves one.\n`);
        process.stdout.write(render(rows, 'table', [
          { header: 'CURRENT', get: (r) => (r.current ? '*' : '') },
          { header: 'NAME', get: (r) => r.name },
          { header: 'HUB', get: (r) => r.hub },
        ]).replace(/^-(?= )/gm, ' '));
      }),
    ['warren config get-contexts', 'warren config get-contexts -o json | jq -r ".[].name"'],
  );

  examples(
    config
      .command('use-context <name>')
      .description('Make a saved context the current one: later commands talk to its hub with its token.')
      .action((name: string) => {
        const saved = readLoginFile();
        const login = Object.hasOwn(saved.contexts, name) ? saved.contexts[name] : undefined;
        if (!login) {
          const known = Object.keys(saved.contexts);
          throw new WarrenError('WARREN_E_USAGE', `no context "${name}"${known.length ? ` (saved: ${known.join(', ')})` : ''}; \`warren config get-contexts\` lists them`);
        }
        writeLoginFile({ ...saved, currentContext: name });
        process.stdout.write(`Switched to context "${name}" (${login.hub}).\n`);
      }),
    ['warren config use-context lab'],
  );

  examples(
    config
      .command('current-context')
      .description('Print the name of the current context.')
      .action(() => {
        const current = readLoginFile().currentContext;
        if (current === undefined) throw new WarrenError('WARREN_E_CONFIG', 'no current context: `warren login` saves one');
        process.stdout.write(`${current}\n`);
      }),
    ['warren config current-context'],
  );
}

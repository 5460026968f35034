/**
 * `warren-agent`: the agent alone, the entry of its bundle (scripts/build-agent.mjs), which the npm
 * package's `warren-agent` runs and the single-file executable carries (`npm run dist`). Its command
 * line is `warren agent`'s:
 *
 *   WARREN_JOIN_TOKEN=wj1.… ./warren-agent --name node1      # = warren agent --name node1
 *   ./warren-agent --version
 *
 * It imports the agent and nothing of the hub, so the bundle holds no native module (the hub's
 * SQLite store is one). A CommonJS bundle has no top-level await: hence the async function below.
 */
import { Command, CommanderError } from 'commander';
import { asWarrenError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { registerAgent } from './commands/agent.js';
import { loadDeferredOptions } from './conventions.js';

async function agentMain(argv: string[]): Promise<number> {
  // The `agent` command itself is the program: its options, help and examples, under this name.
  const program = registerAgent(new Command());
  await loadDeferredOptions(program);
  program.parent = null;
  program.name('warren-agent').version(VERSION, '-v, --version').exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    // The same exit codes as `warren`: 0 help/version, 2 usage, 1 the agent failed (and why).
    if (err instanceof CommanderError) return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    const e = asWarrenError(err);
    process.stderr.write(`warren-agent: ${e.message}${e.code === 'WARREN_E_INTERNAL' && err instanceof Error ? ` (${err.message})` : ''} [${e.code}]\n`);
    return 1;
  }
}

void agentMain(process.argv).then((code) => process.stdout.write('', () => process.exit(code)));

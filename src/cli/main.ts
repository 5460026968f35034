/**
 * The `warren` command. Exit codes: 0 success, 1 the operation failed (stderr says why and what to
 * do), 2 usage error (one line on stderr), whether the client or the hub found it.
 */
import { CommanderError } from 'commander';
import { asWarrenError, type ErrorCode } from '../shared/errors.js';
import { buildProgram } from './program.js';
import { routeNounAlias } from './conventions.js';

/** Codes that mean "what you typed is wrong": the hub's validation errors are usage errors too. */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['WARREN_E_USAGE', 'WARREN_E_BAD_REQUEST', 'WARREN_E_BAD_TARGET']);

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(routeNounAlias(program, argv));
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; every other commander error is a usage error
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    const e = asWarrenError(err);
    if (USAGE_CODES.has(e.code)) {
      process.stderr.write(`error: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 2;
    }
    const detail = e.code === 'WARREN_E_INTERNAL' && err instanceof Error ? ` (${err.message})` : '';
    process.stderr.write(`warren: ${e.message}${detail} [${e.code}]\n`);
    return 1;
  }
}

const code = await main(process.argv);
// Flush stdout/stderr, then exit even if a handle (a follower, a socket) is still open.
process.stdout.write('', () => process.exit(code));

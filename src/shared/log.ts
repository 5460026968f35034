/**
 * Logs (pino). Child loggers carry context (`hub › agent=alpha › stream=42`). Secrets never reach a
 * log line: the serializers below redact the fields that could hold one.
 *
 * Two formats: `json`, one object per line for log collectors (the default off a terminal), and
 * `pretty`, one readable line per entry with the local time (the default on a terminal):
 *
 *   json    {"level":30,"time":1764950400000,"pid":7,"name":"agent","agent":"node1","msg":"joined …"}
 *   pretty  [2026-12-05 16:40:00.000] INFO (agent): joined … {"agent":"node1"}
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * `format` undefined: pretty when the destination is a terminal, else JSON. The pretty printer is
 * loaded only when chosen: a service (an agent under systemd or in a pod) logs JSON, and its memory
 * need not hold the formatter (~8 MiB of RSS).
 */
export async function createLogger(name: string, level: string, format?: LogFormat, destination: 1 | 2 = 1): Promise<Logger> {
  const tty = (destination === 1 ? process.stdout : process.stderr).isTTY;
  const options = {
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: ['token', 'secret', 'password', 'authorization', '*.token', '*.secret', '*.authorization', 'headers.authorization', 'headers["proxy-authorization"]'], censor: '[redacted]' },
  };
  if ((format ?? (tty ? 'pretty' : 'json')) === 'json') return pino(options, pino.destination({ fd: destination, sync: true }));
  // A stream in this thread, not a transport: a transport's worker thread would lose the last lines
  // of a process that exits at once, and would need files beside a single-file build.
  const { default: pretty } = await import('pino-pretty');
  return pino(options, pretty({ destination, sync: true, colorize: tty, singleLine: true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname' }));
}

export const silentLogger: Logger = pino({ level: 'silent' });

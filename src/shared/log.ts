/**
 * Structured JSON logs (pino). Child loggers carry context (`hub › agent=alpha › stream=42`).
 * Secrets never reach a log line: the serializers below redact the fields that could hold one.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level: string, destination: 1 | 2 = 1): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', 'secret', 'password', 'authorization', '*.token', '*.secret', '*.authorization', 'headers.authorization', 'headers["proxy-authorization"]'], censor: '[redacted]' },
    },
    pino.destination({ fd: destination, sync: true }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Failures answered with a 5xx are logged once, by the code that answers them, under an id that the
 * answer repeats (`requestId` in the JSON error body), so an operator can find the one log line a user
 * reports. Internal errors are logged with their stack and cause; those never reach the client, whose
 * body says only "internal error". Deliberate 5xx refusals (agent offline, hub draining) are a warning.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { asWarrenError, type WarrenError } from './errors.js';

/** The part of a pino logger this needs. */
export interface FailureLog {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Twelve hex digits naming one request or stream in the log and in the answer to it. */
export function newRequestId(): string {
  return randomBytes(6).toString('hex');
}

/** `err` as the WarrenError the client gets; logged first when its status is 5xx. */
export function logFailure(log: FailureLog, err: unknown, context: { requestId: string } & Record<string, unknown>): WarrenError {
  const e = asWarrenError(err);
  if (e.status < 500) return e;
  if (e.code === 'WARREN_E_INTERNAL') log.error({ ...context, code: e.code, err: err instanceof Error ? err : e }, 'internal error');
  else log.warn({ ...context, code: e.code, reason: e.message }, 'request failed');
  return e;
}

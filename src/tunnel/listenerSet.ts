/**
 * The bodies of `PUT /warren/v1/listeners` (hub → agent over the tunnel): the whole listener set the
 * agent must hold, and the agent's report of what it bound.
 *
 *   set     {"listeners":[{"forward":"pg","host":"0.0.0.0","port":5432}]}
 *   report  {"listeners":[{"forward":"pg","listening":true,"address":"0.0.0.0:5432"},
 *                         {"forward":"web","listening":false,"error":{"code":"WARREN_E_LISTEN_FAILED","message":"…"}}]}
 */
import net from 'node:net';
import * as z from 'zod/mini';
import type { ListenerReport, ListenerSet } from './protocol.js';

/** Either body is read whole; a peer cannot make the other side buffer more than this. */
export const MAX_LISTENER_BODY = 1 << 20;
const MAX_LISTENERS = 10_000;

export type DecodeResult<T> = { readonly kind: 'ok'; readonly value: T } | { readonly kind: 'error'; readonly reason: string };

const setSchema = z.object({
  listeners: z
    .array(
      z.object({
        forward: z.string().check(z.regex(/^[a-z0-9-]{1,63}$/)),
        host: z.string().check(z.refine((h) => net.isIP(h) !== 0)),
        port: z.int().check(z.minimum(0), z.maximum(65535)),
      }),
    )
    .check(z.maxLength(MAX_LISTENERS)),
});

const reportSchema = z.object({
  listeners: z
    .array(
      z.object({
        forward: z.string().check(z.maxLength(63)),
        listening: z.boolean(),
        address: z.optional(z.string().check(z.maxLength(300))),
        error: z.optional(z.object({ code: z.string().check(z.maxLength(64)), message: z.string().check(z.maxLength(1000)) })),
      }),
    )
    .check(z.maxLength(MAX_LISTENERS)),
});

export function encodeListenerSet(set: ListenerSet): string {
  return JSON.stringify(set);
}

export function decodeListenerSet(body: Uint8Array): DecodeResult<ListenerSet> {
  return decodeJson(body, setSchema, 'listener set');
}

export function encodeListenerReport(report: ListenerReport): string {
  return JSON.stringify(report);
}

export function decodeListenerReport(body: Uint8Array): DecodeResult<ListenerReport> {
  return decodeJson(body, reportSchema, 'listener report');
}

function decodeJson<T>(body: Uint8Array, schema: z.ZodMiniType<T>, what: string): DecodeResult<T> {
  if (body.length > MAX_LISTENER_BODY) return { kind: 'error', reason: `${what} is larger than ${MAX_LISTENER_BODY} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return { kind: 'error', reason: `${what} is not JSON` };
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { kind: 'ok', value: parsed.data } : { kind: 'error', reason: `${what} is malformed` };
}

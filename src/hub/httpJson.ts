/** JSON in and out for the hub's HTTP handlers: bounded bodies, `{code, message, requestId}` errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { WarrenError } from '../shared/errors.js';
import { logFailure, newRequestId, type FailureLog } from '../shared/failureLog.js';

const MAX_BODY = 1 << 20;

export async function readJson<T extends z.ZodType>(req: IncomingMessage, schema: T): Promise<z.output<T>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new WarrenError('WARREN_E_PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new WarrenError('WARREN_E_PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let value: unknown = {};
  if (size > 0) {
    try {
      value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new WarrenError('WARREN_E_BAD_REQUEST', 'request body is not valid JSON');
    }
  }
  return parseInput(schema, value, 'body');
}

/**
 * Validates a request part (body, query, path) with its schema; the first issue becomes a 400 naming
 * the field: `ttl: ttl must be a duration like 30m, 8h, 7d` with `{field: 'ttl'}`.
 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, part: 'body' | 'query' | 'path'): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || part;
    // A message that already names its field ("ttl must be …") is not prefixed a second time.
    const message = new RegExp(`^${field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(issue.message) ? issue.message : `${field}: ${issue.message}`;
    throw new WarrenError('WARREN_E_BAD_REQUEST', message, { field });
  }
  return parsed.data;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/**
 * Answers `err` as `{code, message, requestId}` with the code's status; a 5xx is logged under the same
 * request id first (see failureLog.ts). Once the head is sent there is no body left to say it in: the
 * connection is cut.
 */
export function sendError(res: ServerResponse, err: unknown, log: FailureLog): void {
  const requestId = newRequestId();
  const e = logFailure(log, err, { requestId, method: res.req.method, path: res.req.url?.split('?')[0] });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, { ...e.toJSON(), requestId }, e.status === 401 ? { 'www-authenticate': 'Bearer realm="warren"' } : {});
}

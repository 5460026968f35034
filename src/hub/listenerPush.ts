/**
 * Hub → agent `PUT /warren/v1/listeners` over the agent's tunnel: sends the whole listener set the
 * agent must hold and returns what the agent reports (bound address or bind error per forward).
 */
import { constants as h2c, type ClientHttp2Session } from 'node:http2';
import { z } from 'zod';
import { WarrenError, isErrorCode } from '../errors.js';
import { ERROR_HEADER, LISTENERS_PATH, MESSAGE_HEADER, type ListenerReport, type ListenerSet } from '../tunnel/protocol.js';

const MAX_REPORT_BYTES = 1 << 20;

const reportSchema = z.object({
  listeners: z
    .array(
      z.object({
        forward: z.string().max(63),
        listening: z.boolean(),
        address: z.string().max(300).optional(),
        error: z.object({ code: z.string().max(64), message: z.string().max(1000) }).optional(),
      }),
    )
    .max(10_000),
});

export function pushListeners(session: ClientHttp2Session, set: ListenerSet, timeoutMs: number): Promise<ListenerReport> {
  return new Promise((resolve, reject) => {
    let req;
    try {
      if (session.closed || session.destroyed) throw new Error('session closed');
      req = session.request({ ':method': 'PUT', ':path': LISTENERS_PATH, 'content-type': 'application/json' });
    } catch (err) {
      return reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent is closing', undefined, { cause: err }));
    }
    const timer = setTimeout(() => {
      req.close(h2c.NGHTTP2_CANCEL);
      reject(new WarrenError('WARREN_E_TARGET_TIMEOUT', `agent did not answer the listener update within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    const chunks: Buffer[] = [];
    let size = 0;
    let status = 0;
    let refusal: WarrenError | undefined;
    req.on('response', (h) => {
      status = Number(h[':status']);
      if (status !== 200) {
        const code = String(h[ERROR_HEADER] ?? '');
        // An agent from before forwards answers 404: say so rather than "not found".
        const message = status === 404 ? 'this agent does not support forward entries; upgrade it' : String(h[MESSAGE_HEADER] ?? `agent answered ${status}`);
        refusal = new WarrenError(isErrorCode(code) && status !== 404 ? code : 'WARREN_E_AGENT_REFUSED', message);
      }
    });
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REPORT_BYTES) req.close(h2c.NGHTTP2_CANCEL);
      else chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      if (refusal) return reject(refusal);
      try {
        resolve(reportSchema.parse(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      } catch {
        reject(new WarrenError('WARREN_E_BAD_REQUEST', 'agent sent a malformed listener report'));
      }
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent failed during the listener update', undefined, { cause: err }));
    });
    req.on('close', () => {
      clearTimeout(timer);
      reject(new WarrenError('WARREN_E_TUNNEL_LOST', 'the tunnel to the agent closed during the listener update'));
    });
    req.end(JSON.stringify(set));
  });
}

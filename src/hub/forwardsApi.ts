/**
 * The admin API's routes for TCP forwards, mounted into the API's route table:
 *
 *   POST   /api/v1/forwards        {name, entry, target, allowFrom?}   → 201 ForwardView (listening or lastError)
 *   GET    /api/v1/forwards                                            → [ForwardView]
 *   GET    /api/v1/forwards/:name                                      → ForwardView
 *   DELETE /api/v1/forwards/:name                                      → {deleted}
 *
 * Admin only; creating and deleting are audited as admin changes.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { readJson } from './httpJson.js';
import type { Principal } from '../doors/door.js';
import type { Forwards } from './forwards.js';

/** The route shape of api.ts's table, as far as these routes need it. */
export interface ForwardRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly access: 'admin';
  readonly summary: string;
  readonly status?: number;
  handle(ctx: { readonly req: IncomingMessage; readonly params: Record<string, string>; readonly principal: Principal }): Promise<unknown>;
}

const createSchema = z
  .object({
    name: z.string().min(1).max(63),
    entry: z.string().min(1).max(300),
    target: z.string().min(1).max(300),
    allowFrom: z.array(z.string().max(64)).max(1000).default([]),
  })
  .strict();

export function forwardRoutes(
  forwards: Pick<Forwards, 'create' | 'list' | 'get' | 'remove'>,
  adminAudit: (principal: Principal, target: string, reason: string) => Promise<void>,
): ForwardRoute[] {
  return [
    {
      method: 'POST', path: '/api/v1/forwards', access: 'admin', status: 201,
      summary: 'Create a TCP forward (entry on the hub or an agent → target); answers once its listener is up or has failed.',
      handle: async ({ req, principal }) => {
        const body = await readJson(req, createSchema);
        const view = await forwards.create(body, principal.user);
        const allow = view.allowFrom.length ? ` allowFrom=${view.allowFrom.join(',')}` : '';
        await adminAudit(principal, `forward/${view.name}`, `forward created: entry=${view.entry} target=${view.target}${allow}`);
        return view;
      },
    },
    {
      method: 'GET', path: '/api/v1/forwards', access: 'admin', summary: 'List forwards with their live state (listening, open streams, bytes, last error).',
      handle: async () => forwards.list(),
    },
    {
      method: 'GET', path: '/api/v1/forwards/:name', access: 'admin', summary: 'One forward with its live state.',
      handle: async ({ params }) => forwards.get(params.name!),
    },
    {
      method: 'DELETE', path: '/api/v1/forwards/:name', access: 'admin', summary: 'Delete a forward: its listener closes at once and its connections are cut.',
      handle: async ({ params, principal }) => {
        await forwards.remove(params.name!);
        await adminAudit(principal, `forward/${params.name}`, 'forward deleted');
        return { deleted: params.name };
      },
    },
  ];
}

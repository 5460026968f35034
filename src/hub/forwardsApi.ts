/**
 * The admin API's routes for TCP forwards, mounted into the API's route table:
 *
 *   POST   /api/v1/forwards        {name, entry, target, allowFrom?}   → 201 Forward (listening or lastError)
 *   GET    /api/v1/forwards                                            → [Forward]
 *   GET    /api/v1/forwards/:name                                      → Forward
 *   DELETE /api/v1/forwards/:name                                      → {deleted}
 *
 * Admin only; creating and deleting are audited as admin changes.
 */
import { z } from 'zod';
import type { Principal } from '../doors/door.js';
import type { Forwards } from './forwards.js';
import { route, type ApiRoute } from './apiRoute.js';
import { Deleted, Forward } from './apiSchemas.js';

const createSchema = z
  .object({
    name: z.string().min(1).max(63),
    entry: z.string().min(1).max(300).describe('hub:[ADDR:]PORT or AGENT:[ADDR:]PORT'),
    target: z.string().min(1).max(300).describe('HOST:PORT'),
    allowFrom: z.array(z.string().max(64)).max(1000).default([]).describe('client CIDRs allowed at the entry (default: any)'),
  })
  .strict();

const byName = z.object({ name: z.string().describe('Forward name') });

export function forwardRoutes(
  forwards: Pick<Forwards, 'create' | 'list' | 'get' | 'remove'>,
  adminAudit: (principal: Principal, target: string, reason: string) => Promise<void>,
): ApiRoute[] {
  return [
    route({
      method: 'POST', path: '/api/v1/forwards', auth: 'admin', status: 201,
      summary: 'Create a TCP forward (entry on the hub or an agent → target); answers once its listener is up or has failed.',
      body: createSchema, response: Forward,
      handle: async ({ body, principal }) => {
        const view = await forwards.create(body, principal.user);
        const allow = view.allowFrom.length ? ` allowFrom=${view.allowFrom.join(',')}` : '';
        await adminAudit(principal, `forward/${view.name}`, `forward created: entry=${view.entry} target=${view.target}${allow}`);
        return view;
      },
    }),
    route({
      method: 'GET', path: '/api/v1/forwards', auth: 'admin', summary: 'List forwards with their live state (listening, open streams, bytes, last error).',
      response: z.array(Forward),
      handle: async () => forwards.list(),
    }),
    route({
      method: 'GET', path: '/api/v1/forwards/:name', auth: 'admin', summary: 'One forward with its live state.', params: byName, response: Forward,
      handle: async ({ params }) => forwards.get(params.name),
    }),
    route({
      method: 'DELETE', path: '/api/v1/forwards/:name', auth: 'admin', summary: 'Delete a forward: its listener closes at once and its connections are cut.',
      params: byName, response: Deleted,
      handle: async ({ params, principal }) => {
        await forwards.remove(params.name);
        await adminAudit(principal, `forward/${params.name}`, 'forward deleted');
        return { deleted: params.name };
      },
    }),
  ];
}

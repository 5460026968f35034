/**
 * The admin API's routes for `ExternalService` objects (design §6), the declarative form of egress and
 * ingress rules (externalServices.ts):
 *
 *   POST   /api/v1/externalservices        {items: [ExternalService]}  → {applied: [{name, result, rules}]}
 *   GET    /api/v1/externalservices                                    → [{name, manifest, rules, …}]
 *   GET    /api/v1/externalservices/:name                              → {name, manifest, rules, …}
 *   DELETE /api/v1/externalservices/:name                              → {deleted}
 *
 * Applying is all or nothing over the request and answers once every listener is up. Admin only; every
 * applied or deleted object is audited.
 */
import { z } from 'zod';
import type { Principal } from '../doors/door.js';
import { ExternalService, MAX_DOCUMENTS } from '../shared/externalService.js';
import { route, type ApiRoute } from './apiRoute.js';
import { Deleted, Forward } from './apiSchemas.js';
import type { ExternalServices } from './externalServices.js';

const View = z.object({
  name: z.string(),
  manifest: ExternalService.describe('The object as applied, defaults filled in: `warren apply -f` takes it back'),
  rules: z.array(Forward).describe('The egress and ingress rules it owns, with their live state'),
  createdAt: z.iso.datetime(),
  createdBy: z.string(),
});
const Applied = z.object({
  applied: z.array(z.object({
    name: z.string(),
    result: z.enum(['created', 'configured', 'unchanged']).describe('unchanged: equal to what was stored; its rules and connections were left alone'),
    rules: z.array(Forward),
  })),
});
const byName = z.object({ name: z.string().describe('ExternalService name') });

export function externalServiceRoutes(
  services: Pick<ExternalServices, 'apply' | 'list' | 'get' | 'remove'>,
  adminAudit: (principal: Principal, target: string, reason: string) => Promise<void>,
): ApiRoute[] {
  return [
    route({
      method: 'POST', path: '/api/v1/externalservices', auth: 'admin',
      summary: 'Apply ExternalService objects (all or nothing): each becomes egress and ingress rules that it owns; answers once they listen. TCP only.',
      body: z.object({ items: z.array(ExternalService).min(1).max(MAX_DOCUMENTS) }).strict(), response: Applied,
      handle: async ({ body, principal }) => {
        const applied = await services.apply(body.items, principal.user);
        for (const a of applied) {
          const count = (kind: string) => a.rules.filter((r) => r.kind === kind).length;
          await adminAudit(principal, `externalservice/${a.name}`, `externalservice ${a.result}: ${count('egress')} egress, ${count('ingress')} ingress rules (${a.rules.map((r) => r.name).join(',')})`);
        }
        return { applied };
      },
    }),
    route({
      method: 'GET', path: '/api/v1/externalservices', auth: 'admin', summary: 'List ExternalService objects with the rules they own.',
      response: z.array(View),
      handle: async () => services.list(),
    }),
    route({
      method: 'GET', path: '/api/v1/externalservices/:name', auth: 'admin', summary: 'One ExternalService object with the rules it owns.', params: byName, response: View,
      handle: async ({ params }) => services.get(params.name),
    }),
    route({
      method: 'DELETE', path: '/api/v1/externalservices/:name', auth: 'admin',
      summary: 'Delete an ExternalService object and its rules: their listeners close at once and their connections are cut.',
      params: byName, response: Deleted,
      handle: async ({ params, principal }) => {
        await services.remove(params.name);
        await adminAudit(principal, `externalservice/${params.name}`, 'externalservice deleted with its rules');
        return { deleted: params.name };
      },
    }),
  ];
}

/**
 * The admin API's routes for egress and ingress rules (design §6), forwards of their own kind:
 *
 *   POST   /api/v1/egress    {name, gateway, target, sourceIp, entry, allowFrom?}  → 201 ForwardView
 *   GET    /api/v1/egress                                                      → [ForwardView]
 *   GET    /api/v1/egress/:name                                                → ForwardView
 *   DELETE /api/v1/egress/:name                                                → {deleted}
 *   POST   /api/v1/ingress   {name, gateway, listen, target, allowFrom?}        → 201 ForwardView
 *   GET|DELETE /api/v1/ingress[/:name]                                         (as for egress)
 *
 * An egress rule's entry (hub:PORT or AGENT:PORT) accepts connections and its gateway dials the target
 * from sourceIp. An ingress rule listens on the gateway at listen (SOURCE_IP:PORT) and reaches the
 * target through the router (a host behind another agent). A rule is answered once its listener is
 * up; when it cannot listen, nothing is created and the error says why. Admin only; audited.
 */
import { z } from 'zod';
import { WarrenError } from '../shared/errors.js';
import { formatHostPort, parseHostPort } from '../shared/hostPort.js';
import type { Principal } from '../doors/door.js';
import { route, type ApiRoute } from './apiRoute.js';
import { Deleted, Forward } from './apiSchemas.js';
import type { Forwards, ForwardView } from './forwards.js';

const common = {
  name: z.string().min(1).max(63),
  gateway: z.string().min(1).max(63).describe('The gateway agent (started with --source-ip)'),
  target: z.string().min(1).max(300).describe('HOST:PORT'),
  allowFrom: z.array(z.string().max(64)).max(1000).default([]).describe('client CIDRs allowed at the entry (default: any)'),
};
const egressSchema = z
  .object({ ...common, sourceIp: z.string().min(1).max(64).describe('The gateway address the target sees'), entry: z.string().min(1).max(300).describe('hub:[ADDR:]PORT or AGENT:[ADDR:]PORT') })
  .strict();
const ingressSchema = z.object({ ...common, listen: z.string().min(1).max(300).describe('SOURCE_IP:PORT on the gateway') }).strict();
const byName = z.object({ name: z.string().describe('Rule name') });

/** An ingress rule's listen (SOURCE_IP:PORT) as the entry on its gateway, and its source address. */
export function ingressEntry(gateway: string, listen: string): { entry: string; sourceIp: string } {
  const hp = parseHostPort(listen);
  if (!hp) throw new WarrenError('WARREN_E_BAD_REQUEST', `listen: "${listen.slice(0, 100)}" is not SOURCE_IP:PORT`, { field: 'listen' });
  return { entry: `${gateway}:${formatHostPort(hp)}`, sourceIp: hp.host };
}

export function egressRoutes(
  forwards: Pick<Forwards, 'create' | 'list' | 'get' | 'remove'>,
  adminAudit: (principal: Principal, target: string, reason: string) => Promise<void>,
): ApiRoute[] {
  const describe = (v: ForwardView) =>
    v.kind === 'egress'
      ? `egress rule created: entry=${v.entry} gateway=${v.gateway} sourceIp=${v.sourceIp} target=${v.target}`
      : `ingress rule created: gateway=${v.gateway} listen=${v.address ?? v.entry} target=${v.target}`;
  const one = (kind: 'egress' | 'ingress', name: string) => {
    const v = forwards.get(name);
    if (v.kind !== kind) throw new WarrenError('WARREN_E_NOT_FOUND', `no ${kind} rule "${name}"; list them with \`warren ${kind} ls\``);
    return v;
  };
  const readRoutes = (kind: 'egress' | 'ingress'): ApiRoute[] => [
    route({
      method: 'GET', path: `/api/v1/${kind}`, auth: 'admin', summary: `List ${kind} rules with their live state (listening, open streams, bytes, last error).`,
      response: z.array(Forward),
      handle: async () => forwards.list().filter((v) => v.kind === kind),
    }),
    route({
      method: 'GET', path: `/api/v1/${kind}/:name`, auth: 'admin', summary: `One ${kind} rule with its live state.`, params: byName, response: Forward,
      handle: async ({ params }) => one(kind, params.name),
    }),
    route({
      method: 'DELETE', path: `/api/v1/${kind}/:name`, auth: 'admin', summary: `Delete an ${kind} rule: its listener closes at once and its connections are cut.`,
      params: byName, response: Deleted,
      handle: async ({ params, principal }) => {
        await forwards.remove(params.name, { kind });
        await adminAudit(principal, `${kind}/${params.name}`, `${kind} rule deleted`);
        return { deleted: params.name };
      },
    }),
  ];
  return [
    route({
      method: 'POST', path: '/api/v1/egress', auth: 'admin', status: 201, body: egressSchema, response: Forward,
      summary: 'Create an egress rule: connections to its entry reach the target from the gateway\'s source address (TCP only); answers once it listens.',
      handle: async ({ body, principal }) => {
        const view = await forwards.create({ ...body, kind: 'egress' }, principal.user);
        await adminAudit(principal, `egress/${view.name}`, describe(view));
        return view;
      },
    }),
    ...readRoutes('egress'),
    route({
      method: 'POST', path: '/api/v1/ingress', auth: 'admin', status: 201, body: ingressSchema, response: Forward,
      summary: 'Create an ingress rule: the gateway listens on SOURCE_IP:PORT and carries connections to a target behind another agent (TCP only).',
      handle: async ({ body, principal }) => {
        const { name, gateway, target, allowFrom, listen } = body;
        const view = await forwards.create({ name, gateway, target, allowFrom, kind: 'ingress', ...ingressEntry(gateway, listen) }, principal.user);
        await adminAudit(principal, `ingress/${view.name}`, describe(view));
        return view;
      },
    }),
    ...readRoutes('ingress'),
  ];
}

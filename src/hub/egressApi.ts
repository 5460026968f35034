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
import { readJson } from './httpJson.js';
import type { Principal } from '../doors/door.js';
import type { ForwardKind } from '../store/store.js';
import type { ForwardRoute } from './forwardsApi.js';
import type { Forwards, ForwardView } from './forwards.js';

const common = {
  name: z.string().min(1).max(63),
  gateway: z.string().min(1).max(63),
  target: z.string().min(1).max(300),
  allowFrom: z.array(z.string().max(64)).max(1000).default([]),
};
const egressSchema = z.object({ ...common, sourceIp: z.string().min(1).max(64), entry: z.string().min(1).max(300) }).strict();
const ingressSchema = z.object({ ...common, listen: z.string().min(1).max(300) }).strict();

/** An ingress rule's listen (SOURCE_IP:PORT) as the entry on its gateway, and its source address. */
export function ingressEntry(gateway: string, listen: string): { entry: string; sourceIp: string } {
  const hp = parseHostPort(listen);
  if (!hp) throw new WarrenError('WARREN_E_BAD_REQUEST', `listen: "${listen.slice(0, 100)}" is not SOURCE_IP:PORT`, { field: 'listen' });
  return { entry: `${gateway}:${formatHostPort(hp)}`, sourceIp: hp.host };
}

export function egressRoutes(
  forwards: Pick<Forwards, 'create' | 'list' | 'get' | 'remove'>,
  adminAudit: (principal: Principal, target: string, reason: string) => Promise<void>,
): ForwardRoute[] {
  const describe = (v: ForwardView) =>
    v.kind === 'egress'
      ? `egress rule created: entry=${v.entry} gateway=${v.gateway} sourceIp=${v.sourceIp} target=${v.target}`
      : `ingress rule created: gateway=${v.gateway} listen=${v.sourceIp}:${v.entry.split(':').pop()} target=${v.target}`;
  const one = (kind: ForwardKind, name: string) => {
    const v = forwards.get(name);
    if (v.kind !== kind) throw new WarrenError('WARREN_E_NOT_FOUND', `no ${kind} rule "${name}"; list them with \`warren ${kind} ls\``);
    return v;
  };
  const routes = (kind: 'egress' | 'ingress', create: ForwardRoute['handle'], summary: string): ForwardRoute[] => [
    { method: 'POST', path: `/api/v1/${kind}`, access: 'admin', status: 201, summary, handle: create },
    {
      method: 'GET', path: `/api/v1/${kind}`, access: 'admin', summary: `List ${kind} rules with their live state (listening, open streams, bytes, last error).`,
      handle: async () => forwards.list().filter((v) => v.kind === kind),
    },
    { method: 'GET', path: `/api/v1/${kind}/:name`, access: 'admin', summary: `One ${kind} rule with its live state.`, handle: async ({ params }) => one(kind, params.name!) },
    {
      method: 'DELETE', path: `/api/v1/${kind}/:name`, access: 'admin', summary: `Delete an ${kind} rule: its listener closes at once and its connections are cut.`,
      handle: async ({ params, principal }) => {
        await forwards.remove(params.name!, { kind });
        await adminAudit(principal, `${kind}/${params.name}`, `${kind} rule deleted`);
        return { deleted: params.name };
      },
    },
  ];
  return [
    ...routes('egress', async ({ req, principal }) => {
      const b = await readJson(req, egressSchema);
      const view = await forwards.create({ ...b, kind: 'egress' }, principal.user);
      await adminAudit(principal, `egress/${view.name}`, describe(view));
      return view;
    }, 'Create an egress rule: connections to its entry reach the target from the gateway\'s source address (TCP).'),
    ...routes('ingress', async ({ req, principal }) => {
      const b = await readJson(req, ingressSchema);
      const view = await forwards.create({ name: b.name, gateway: b.gateway, target: b.target, allowFrom: b.allowFrom, kind: 'ingress', ...ingressEntry(b.gateway, b.listen) }, principal.user);
      await adminAudit(principal, `ingress/${view.name}`, describe(view));
      return view;
    }, 'Create an ingress rule: the gateway listens on SOURCE_IP:PORT and carries connections to a target behind another agent (TCP).'),
  ];
}

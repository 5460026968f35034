/**
 * `ExternalService` objects (`warren apply -f`, `warren get externalservices`, `warren delete
 * externalservice`): the declarative form of egress and ingress rules (design §6). A document becomes
 * rules owned by `externalservice/NAME`, which only the object changes:
 *
 *   egress  NAME-eI-TARGETPORT   one per source I (0-based) and port: entry on the entry agent
 *                                (annotation warren.dev/entry-agent) at TARGETPORT + I, so each source
 *                                service has its own entry port, which a Kubernetes Service of its own
 *                                fronts (its selector picks the agent pods); the gateway that owns
 *                                sourceIP dials targetIP:PORT from sourceIP.
 *   ingress NAME-iI-P            one per source I and each of its service's `ports` P: the gateway
 *                                listens on sourceIP:P, admits targetIP only, and reaches
 *                                SERVICE.NAMESPACE.svc.cluster.local through the entry agent
 *                                (`…​.AGENT.warren:P`).
 *
 * The gateway is the one agent whose --source-ip includes sourceIP (its join token must allow it too).
 * Applying is all or nothing over the whole request: every document is checked (schema, gateways,
 * names, entries, against each other and against every other rule) before anything changes, and when a
 * listener cannot start every service of the request goes back to what it was. A document equal to
 * what is stored changes nothing (its connections stay up).
 */
import { isDeepStrictEqual } from 'node:util';
import { WarrenError, asWarrenError } from '../shared/errors.js';
import { formatHostPort } from '../shared/hostPort.js';
import { ENTRY_AGENT_ANNOTATION, entriesClash, formatEntry } from '../shared/forwardSpec.js';
import { checkExternalServices, type ExternalService } from '../shared/externalService.js';
import type { ExternalServiceRecord, ForwardRecord, Store } from '../store/store.js';
import { entryOf, type ForwardInput, type Forwards, type ForwardSessions, type ForwardView } from './forwards.js';

export const OWNER_PREFIX = 'externalservice/';

export function ownerOf(name: string): string {
  return `${OWNER_PREFIX}${name}`;
}

/** A rule a document asks for, with the document field it comes from (for errors). */
export interface PlannedRule extends ForwardInput {
  readonly field: string;
}

/**
 * The rules of one document. `gatewayOf(ip, field)` names the agent that owns `ip` or throws.
 * Pure: the unit tests check the mapping without a hub.
 */
export function rulesOf(doc: ExternalService, gatewayOf: (ip: string, field: string) => string): PlannedRule[] {
  const name = doc.metadata.name;
  const agent = doc.metadata.annotations![ENTRY_AGENT_ANNOTATION]!;
  const { targetIP, sources, ports } = doc.spec;
  const rules: PlannedRule[] = [];
  for (const [i, src] of sources.entries()) {
    const gateway = gatewayOf(src.sourceIP, `spec.sources[${i}].sourceIP`);
    for (const [j, p] of ports.entries()) {
      const entryPort = p.targetPort + i;
      if (entryPort > 65535) {
        throw new WarrenError('WARREN_E_BAD_REQUEST', `spec.ports[${j}].targetPort: source ${i} would listen on ${entryPort} (targetPort + source index), above 65535`, { field: `spec.ports[${j}].targetPort` });
      }
      rules.push({
        name: `${name}-e${i}-${p.targetPort}`, kind: 'egress', gateway, sourceIp: src.sourceIP, entry: `${agent}:${entryPort}`,
        target: formatHostPort({ host: targetIP, port: p.port }), allowFrom: [], field: `spec.sources[${i}]`,
      });
    }
    for (const [k, p] of (src.service.ports ?? []).entries()) {
      rules.push({
        name: `${name}-i${i}-${p}`, kind: 'ingress', gateway, sourceIp: src.sourceIP, entry: `${gateway}:${formatHostPort({ host: src.sourceIP, port: p })}`,
        target: `${src.service.name}.${src.service.namespace}.svc.cluster.local.${agent}.warren:${p}`, allowFrom: [targetIP], field: `spec.sources[${i}].service.ports[${k}]`,
      });
    }
  }
  return rules;
}

/** What `warren get externalservices -o json` prints for each object. */
export interface ExternalServiceView {
  readonly name: string;
  /** The object as applied (defaults filled in); `warren apply -f` takes it back. */
  readonly manifest: ExternalService;
  readonly rules: ForwardView[];
  readonly createdAt: string;
  readonly createdBy: string;
}

export interface ApplyResult {
  readonly name: string;
  readonly result: 'created' | 'configured' | 'unchanged';
  readonly rules: ForwardView[];
}

export interface ExternalServicesDeps {
  readonly store: Pick<Store, 'listAgents' | 'listExternalServices' | 'putExternalService' | 'deleteExternalService'>;
  readonly forwards: Pick<Forwards, 'prepare' | 'replaceOwned' | 'ownedBy' | 'list'>;
  readonly sessions: Pick<ForwardSessions, 'get'>;
}

interface Plan {
  readonly doc: ExternalService;
  readonly owner: string;
  readonly records: ForwardRecord[];
  readonly old: ExternalServiceRecord | undefined;
  readonly oldRecords: ForwardRecord[];
}

export class ExternalServices {
  /** One change at a time: a plan is checked against the rules as they are when it runs. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ExternalServicesDeps) {}

  async list(): Promise<ExternalServiceView[]> {
    const rules = this.deps.forwards.list();
    return (await this.deps.store.listExternalServices()).map((s) => ({
      name: s.name, manifest: s.manifest as ExternalService, rules: rules.filter((r) => r.owner === ownerOf(s.name)),
      createdAt: new Date(s.createdAt).toISOString(), createdBy: s.createdBy,
    }));
  }

  async get(name: string): Promise<ExternalServiceView> {
    const found = (await this.list()).find((s) => s.name === name);
    if (!found) throw new WarrenError('WARREN_E_NOT_FOUND', `no externalservice "${name}"; list them with \`warren get externalservices\``);
    return found;
  }

  apply(values: readonly unknown[], user: string): Promise<ApplyResult[]> {
    return this.serial(() => this.applyNow(checkExternalServices(values), user));
  }

  /** Deletes the object and its rules: their listeners close before this returns. */
  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const owner = ownerOf(name);
      if (!(await this.deps.store.listExternalServices()).some((s) => s.name === name)) {
        throw new WarrenError('WARREN_E_NOT_FOUND', `no externalservice "${name}"; list them with \`warren get externalservices\``);
      }
      await this.deps.forwards.replaceOwned(owner, [], async () => {
        await this.deps.store.deleteExternalService(name, owner);
      }, async () => undefined);
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The agent whose --source-ip includes `ip` (live, else as last seen); exactly one must. */
  private async gateways(): Promise<(ip: string, field: string) => string> {
    const owned = (await this.deps.store.listAgents()).map((a) => ({
      name: a.name, ips: this.deps.sessions.get(a.name)?.info?.sourceIps ?? a.meta.sourceIps ?? [],
    }));
    return (ip, field) => {
      const owners = owned.filter((a) => a.ips.includes(ip)).map((a) => a.name);
      if (owners.length === 0) {
        throw new WarrenError('WARREN_E_BAD_REQUEST', `${field}: no gateway agent owns ${ip}; start one on a host that has the address with \`warren agent --source-ip ${ip}\` (join token: \`warren join-token create --source-ips ${ip}\`)`, { field });
      }
      if (owners.length > 1) {
        throw new WarrenError('WARREN_E_CONFLICT', `${field}: ${ip} is owned by several gateway agents (${owners.join(', ')}); an address belongs to one gateway: drop it from the others' --source-ip`, { field });
      }
      return owners[0]!;
    };
  }

  private async applyNow(docs: ExternalService[], user: string): Promise<ApplyResult[]> {
    const stored = new Map((await this.deps.store.listExternalServices()).map((s) => [s.name, s]));
    const gatewayOf = await this.gateways();
    const replacing = new Set(docs.flatMap((d) => this.deps.forwards.ownedBy(ownerOf(d.metadata.name)).map((r) => r.name)));
    const plans: Plan[] = [];
    const kept: Array<Pick<Plan, 'doc' | 'records'>> = [];
    const unchanged: ApplyResult[] = [];
    for (const doc of docs) {
      const name = doc.metadata.name;
      const where = (e: unknown) => {
        const w = asWarrenError(e);
        return new WarrenError(w.code, `externalservice "${name}": ${w.message}`, w.details);
      };
      const owner = ownerOf(name);
      const old = stored.get(name);
      const oldRecords = this.deps.forwards.ownedBy(owner);
      let planned: PlannedRule[];
      try {
        planned = rulesOf(doc, gatewayOf);
      } catch (e) {
        throw where(e);
      }
      const records: ForwardRecord[] = [];
      for (const rule of planned) {
        try {
          records.push(await this.deps.forwards.prepare(rule, user, replacing));
        } catch (e) {
          const w = asWarrenError(e);
          throw where(new WarrenError(w.code, `${rule.field}: rule "${rule.name}": ${w.message}`, w.details));
        }
      }
      if (old && isDeepStrictEqual(old.manifest, doc) && sameRules(oldRecords, records)) {
        unchanged.push({ name, result: 'unchanged', rules: this.deps.forwards.list().filter((r) => r.owner === owner) });
        kept.push({ doc, records });
        continue;
      }
      plans.push({ doc, owner, records, old, oldRecords });
    }
    checkAcross([...plans, ...kept]);
    const done: Plan[] = [];
    const results: ApplyResult[] = [...unchanged];
    for (const plan of plans) {
      const { doc, owner, records, old } = plan;
      const service: ExternalServiceRecord = { name: doc.metadata.name, manifest: doc, createdAt: Date.now(), createdBy: user };
      try {
        const rules = await this.deps.forwards.replaceOwned(
          owner, records,
          () => this.deps.store.putExternalService(service, owner, records),
          () => this.restoreStore(plan),
        );
        results.push({ name: service.name, result: old ? 'configured' : 'created', rules });
        done.push(plan);
      } catch (e) {
        for (const p of done.reverse()) await this.deps.forwards.replaceOwned(p.owner, p.oldRecords, () => this.restoreStore(p), async () => undefined);
        const w = asWarrenError(e);
        throw new WarrenError(w.code, `externalservice "${service.name}": ${w.message}`, w.details);
      }
    }
    return results.sort((a, b) => docs.findIndex((d) => d.metadata.name === a.name) - docs.findIndex((d) => d.metadata.name === b.name));
  }

  /** Puts the store back to what it held for the plan's object before the request. */
  private async restoreStore(p: Plan): Promise<void> {
    if (p.old) await this.deps.store.putExternalService(p.old, p.owner, p.oldRecords);
    else await this.deps.store.deleteExternalService(p.doc.metadata.name, p.owner);
  }
}

/** Same rules apart from when they were made. */
function sameRules(a: readonly ForwardRecord[], b: readonly ForwardRecord[]): boolean {
  const key = (r: ForwardRecord) => JSON.stringify([r.name, r.kind, r.gateway, r.sourceIp, r.entryAgent, r.entryHost, r.entryPort, r.target, r.allowFrom]);
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return isDeepStrictEqual(ka, kb);
}

/** Rules of different documents in one request must not share a name or an entry. */
function checkAcross(plans: ReadonlyArray<Pick<Plan, 'doc' | 'records'>>): void {
  const all = plans.flatMap((p) => p.records.map((r) => ({ svc: p.doc.metadata.name, r })));
  for (const [i, a] of all.entries()) {
    for (const b of all.slice(i + 1)) {
      if (a.svc === b.svc) continue;
      if (a.r.name === b.r.name) throw new WarrenError('WARREN_E_CONFLICT', `externalservice "${a.svc}" and "${b.svc}" would both make rule "${a.r.name}"`);
      if (entriesClash(entryOf(a.r), entryOf(b.r))) {
        throw new WarrenError('WARREN_E_CONFLICT', `externalservice "${a.svc}" rule "${a.r.name}" and externalservice "${b.svc}" rule "${b.r.name}" would both listen on ${formatEntry(entryOf(a.r))}`);
      }
    }
  }
}

/**
 * Agent enrollment: join tokens are created by admins and exchanged once (or N times, for a fleet)
 * for an agent certificate bound to the agent's name; renewal swaps a still-valid certificate for a
 * fresh one. The name is authorised here, never taken from the CSR, and must be one the token's
 * authority allows; that authority (name, clusters, routes) is copied onto the agent's record, where
 * every tunnel admission checks the agent's claims against it (authority.ts).
 */
import { WarrenError } from '../shared/errors.js';
import { formatJoinToken, hashSecret, newJoinSecret, parseJoinToken, pinsEqual, secretMatches } from '../shared/joinToken.js';
import { issueAgentCert, type Ca } from '../pki/pki.js';
import { isLabel } from '../shared/hostPort.js';
import type { AgentAuthority, JoinTokenRecord, Store } from '../store/store.js';
import { nameRefusal } from './authority.js';

export interface EnrollmentDeps {
  readonly store: Store;
  readonly ca: Ca;
  readonly caPin: string;
  readonly hubUrl: () => string;
  readonly certTtlMs: number;
}

export interface CreatedJoinToken {
  readonly token: string;
  readonly id: string;
  readonly expiresAt: string;
  readonly uses: number | null;
  readonly labels: Record<string, string>;
  readonly authority: AgentAuthority;
  readonly command: string;
}

export interface JoinTokenOptions {
  readonly ttlMs: number;
  readonly uses: number | null;
  readonly labels: Record<string, string>;
  readonly authority: AgentAuthority;
  readonly createdBy: string;
}

export class Enrollment {
  constructor(private readonly deps: EnrollmentDeps) {}

  async createJoinToken(opts: JoinTokenOptions): Promise<CreatedJoinToken> {
    const { id, secret } = newJoinSecret();
    const now = Date.now();
    const expiresAt = now + opts.ttlMs;
    await this.deps.store.createJoinToken({
      id, secretHash: hashSecret(secret), expiresAt, maxUses: opts.uses, used: 0, labels: opts.labels, authority: opts.authority,
      createdAt: now, createdBy: opts.createdBy,
    });
    const token = formatJoinToken({ hubUrl: this.deps.hubUrl(), caPin: this.deps.caPin, id, secret });
    // The environment, not argv: a command-line token is readable by every user through `ps`.
    const command = `WARREN_JOIN_TOKEN=${token} warren agent${opts.authority.name ? ` --name ${opts.authority.name}` : ''}`;
    return { token, id, expiresAt: new Date(expiresAt).toISOString(), uses: opts.uses, labels: opts.labels, authority: opts.authority, command };
  }

  /**
   * Exchanges a join token and a CSR for a certificate naming `name`. Everything that can refuse (token,
   * name, CSR) is checked before a use is spent; the use is then counted in the same store transaction
   * that records the agent, which checks the token again, so only an enrollment that happened spends one.
   */
  async join(req: { token: string; name: string; csr: string; labels: Record<string, string> }): Promise<{ certPem: string; caPem: string; name: string; labels: Record<string, string> }> {
    const parsed = parseJoinToken(req.token);
    if (!parsed) throw new WarrenError('WARREN_E_JOIN_TOKEN_INVALID', 'join token is malformed; copy it again from `warren join-token create`');
    if (!pinsEqual(parsed.caPin, this.deps.caPin)) throw new WarrenError('WARREN_E_JOIN_TOKEN_INVALID', 'join token was made by another hub (CA pin differs)');
    if (!isLabel(req.name)) {
      throw new WarrenError('WARREN_E_BAD_REQUEST', `agent name "${req.name.slice(0, 80)}" is not an RFC 1123 label (lower-case letters, digits, '-', at most 63)`);
    }
    const usable = (t: JoinTokenRecord | undefined): JoinTokenRecord => {
      const token = checkJoinToken(t, parsed.secret, Date.now());
      const refusal = nameRefusal(token.authority, req.name);
      if (refusal) throw refusal;
      return token;
    };
    usable(await this.deps.store.getJoinToken(parsed.id));
    const taken = () => new WarrenError('WARREN_E_AGENT_NAME_TAKEN', `agent name "${req.name}" is already registered; remove it first with \`warren agents rm ${req.name}\``, { agent: req.name });
    if (await this.deps.store.getAgent(req.name)) throw taken();
    const issued = await this.issue(req.csr, req.name);
    let labels: Record<string, string> = {};
    const created = await this.deps.store.enrollAgent(parsed.id, (t) => {
      const token = usable(t);
      // The admin's labels win: an agent must not relabel itself into another grant's or view's reach.
      labels = { ...req.labels, ...token.labels };
      return {
        name: req.name, certSerial: issued.serial, certExpiresAt: issued.notAfter.getTime(), labels, authority: token.authority,
        createdAt: Date.now(), meta: {}, lastSeen: null,
      };
    });
    if (!created) throw taken();
    return { certPem: issued.certPem, caPem: this.deps.ca.certPem, name: req.name, labels };
  }

  /** Renews the certificate of an agent that authenticated with its current certificate. */
  async renew(name: string, currentSerial: string, csr: string): Promise<{ certPem: string; caPem: string }> {
    const record = await this.deps.store.getAgent(name);
    if (!record || record.certSerial !== currentSerial) throw new WarrenError('WARREN_E_AGENT_REVOKED', `agent "${name}" was removed or its certificate replaced`);
    const issued = await this.issue(csr, name);
    if (!(await this.deps.store.updateAgentCert(name, currentSerial, issued.serial, issued.notAfter.getTime()))) {
      throw new WarrenError('WARREN_E_CONFLICT', `agent "${name}" renewed concurrently; retry`);
    }
    return { certPem: issued.certPem, caPem: this.deps.ca.certPem };
  }

  private async issue(csr: string, name: string) {
    try {
      return await issueAgentCert(this.deps.ca, csr, name, this.deps.certTtlMs / 86_400_000);
    } catch (err) {
      throw new WarrenError('WARREN_E_BAD_REQUEST', `csr: ${(err as Error).message}`);
    }
  }
}

/** The token if it may be used now; otherwise the refusal (unknown ids and wrong secrets look alike). */
function checkJoinToken(t: JoinTokenRecord | undefined, secret: string, now: number): JoinTokenRecord {
  if (!t || !secretMatches(secret, t.secretHash)) throw new WarrenError('WARREN_E_JOIN_TOKEN_INVALID', 'join token is unknown to this hub or was deleted');
  if (t.expiresAt <= now) throw new WarrenError('WARREN_E_JOIN_TOKEN_EXPIRED', 'join token has expired; create a new one with `warren join-token create`');
  if (t.maxUses !== null && t.used >= t.maxUses) throw new WarrenError('WARREN_E_JOIN_TOKEN_USED_UP', 'join token has no uses left; create a new one with `warren join-token create`');
  return t;
}

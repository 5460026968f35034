/**
 * Stream quotas, checked by the opener for every door before anything is dialled:
 *
 *   per principal   at most `perPrincipal` streams open at once (every door and agent together), and
 *                   at most `ratePerSecond` new ones per second (a token bucket holding one second's
 *                   worth, so a burst of that size passes and then the rate holds)
 *   per agent       at most `perAgent` streams at once, shared between principals: a principal may hold
 *                   at most perAgent / (k + 1) of them, k being the principals holding streams there
 *                   (itself included). Alone it gets half, with two each gets a third, and so on, so
 *                   a newcomer always finds room unless many principals each hold their share.
 *
 * A refusal is WARREN_E_QUOTA: each door answers it at once (HTTP 429 with Retry-After, SOCKS 0x02).
 * 0 for a limit means "no limit".
 */
import { WarrenError } from '../shared/errors.js';

export interface QuotaLimits {
  readonly perPrincipal: number;
  readonly ratePerSecond: number;
  readonly perAgent: number;
}

export type QuotaKind = 'principal-streams' | 'principal-rate' | 'agent-share';

/** One admitted stream's place; release it exactly once when the stream has ended (further calls do nothing). */
export interface QuotaSlot {
  /** Takes a share of `agent` for this slot; false: the principal holds its share of that agent already. */
  bindAgent(agent: string): boolean;
  release(): void;
}

interface PrincipalState {
  open: number;
  tokens: number;
  refilledAt: number;
}

export class Quotas {
  private readonly principals = new Map<string, PrincipalState>();
  /** agent → principal → streams held. */
  private readonly agents = new Map<string, Map<string, number>>();

  constructor(
    readonly limits: QuotaLimits,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Admits one new stream for `principal` or throws WARREN_E_QUOTA (`details.quota` says which limit,
   * `details.retryAfterS` when to try again).
   */
  acquire(principal: string): QuotaSlot {
    const { perPrincipal, ratePerSecond } = this.limits;
    const state = this.principals.get(principal) ?? { open: 0, tokens: ratePerSecond, refilledAt: this.now() };
    if (ratePerSecond > 0) {
      const t = this.now();
      state.tokens = Math.min(ratePerSecond, state.tokens + ((t - state.refilledAt) / 1000) * ratePerSecond);
      state.refilledAt = t;
    }
    if (perPrincipal > 0 && state.open >= perPrincipal) {
      throw quotaError('principal-streams', `"${principal}" has ${state.open} streams open, the most one principal may hold (--max-streams-per-principal ${perPrincipal}); close some and retry`, 1);
    }
    if (ratePerSecond > 0 && state.tokens < 1) {
      this.principals.set(principal, state);
      throw quotaError('principal-rate', `"${principal}" opens streams faster than ${ratePerSecond} per second (--max-new-streams-per-second); slow down and retry`, 1);
    }
    if (ratePerSecond > 0) state.tokens -= 1;
    state.open++;
    this.principals.set(principal, state);

    let agent: string | undefined;
    let released = false;
    return {
      bindAgent: (name) => {
        if (agent === name) return true;
        if (agent !== undefined) this.leaveAgent(agent, principal);
        agent = undefined;
        if (!this.joinAgent(name, principal)) return false;
        agent = name;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        if (agent !== undefined) this.leaveAgent(agent, principal);
        state.open--;
        // Forget an idle principal once its bucket is full again, so the map holds only active ones.
        if (state.open === 0 && (ratePerSecond === 0 || state.tokens + ((this.now() - state.refilledAt) / 1000) * ratePerSecond >= ratePerSecond)) {
          if (this.principals.get(principal) === state) this.principals.delete(principal);
        }
      },
    };
  }

  /** Streams held on `agent`, by principal (for `agents show` and tests). */
  heldOn(agent: string): ReadonlyMap<string, number> {
    return this.agents.get(agent) ?? new Map();
  }

  private joinAgent(agent: string, principal: string): boolean {
    const limit = this.limits.perAgent;
    const held = this.agents.get(agent) ?? new Map<string, number>();
    if (limit > 0) {
      let total = 0;
      for (const n of held.values()) total += n;
      const mine = held.get(principal) ?? 0;
      const holders = held.size + (mine === 0 ? 1 : 0);
      if (total >= limit || mine >= Math.max(1, Math.floor(limit / (holders + 1)))) return false;
    }
    held.set(principal, (held.get(principal) ?? 0) + 1);
    this.agents.set(agent, held);
    return true;
  }

  private leaveAgent(agent: string, principal: string): void {
    const held = this.agents.get(agent);
    const n = held?.get(principal);
    if (!held || n === undefined) return;
    if (n > 1) held.set(principal, n - 1);
    else held.delete(principal);
    if (held.size === 0) this.agents.delete(agent);
  }
}

export function agentShareError(agent: string, principal: string, perAgent: number): WarrenError {
  return quotaError('agent-share', `"${principal}" holds its fair share of agent "${agent}"'s streams (--max-streams-per-agent ${perAgent}, shared between the principals using it); close some and retry`, 1);
}

function quotaError(quota: QuotaKind, message: string, retryAfterS: number): WarrenError {
  return new WarrenError('WARREN_E_QUOTA', message, { quota, retryAfterS });
}

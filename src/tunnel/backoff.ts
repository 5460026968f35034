/**
 * Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and
 * Jitter"): the delay is uniform in [0, min(cap, base·2^attempt)], so a fleet that lost its hub at the
 * same moment does not come back in lockstep.
 */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly capMs: number;
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  next(): number {
    const ceiling = Math.min(this.opts.capMs, this.opts.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor((this.opts.random ?? Math.random)() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }
}

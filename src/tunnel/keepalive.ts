/**
 * PING keepalive with a reply deadline, run on both ends of a tunnel. A ping (a SETTINGS frame once the
 * session is closing) is sent every interval; if the previous one is still unanswered when the next is
 * due, the peer is declared dead. So a peer that stops answering is detected within two intervals,
 * including a silent partition where no FIN or RST ever arrives.
 *
 * A hub holds one session per agent, so the sessions share one timer per interval (a wheel of SLOTS
 * slots, one slot run per tick) instead of a timer each: a session joins the slot that has just run, so
 * its pings come every interval from its start, as a timer of its own would send them (to within
 * interval / SLOTS), and the pings of many sessions stay spread over the interval instead of leaving
 * in one burst.
 *
 * A hub need not ping an agent that pings it: with `listen`, what the peer sends (its own pings, any
 * stream data; read as the socket's byte count, so receiving costs no JavaScript) is its liveness. The
 * session is looked at every half interval; it is probed only after a whole interval without a byte, or
 * every RTT_EVERY intervals for the RTT; and the peer is dead at the first look with nothing heard while
 * a probe is out. So a peer that goes silent is still detected within two intervals (a probe leaves
 * after one to one and a half silent intervals and has half an interval to be answered), and a hub with
 * 10,000 agents sends a sixth of the pings.
 */
import type { Http2Session } from 'node:http2';

export interface KeepaliveOptions {
  readonly intervalMs: number;
  /** The peer pings: count what it sends as its liveness, probe only when it is silent (above). */
  readonly listen?: boolean;
  readonly onRtt?: (ms: number) => void;
  readonly onDead: () => void;
}

const SLOTS = 16;
/** With `listen`, a probe for the RTT every this many intervals even while the peer is heard. */
const RTT_EVERY = 6;

interface Beat {
  slot: number;
  /** Sends the next ping, or declares the peer dead if the last one is unanswered. */
  readonly run: () => void;
}

class Wheel {
  private readonly slots: Array<Set<Beat>> = Array.from({ length: SLOTS }, () => new Set());
  /** The slot the next tick runs. */
  private cursor = 0;
  private size = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  add(beat: Beat): void {
    beat.slot = (this.cursor + SLOTS - 1) % SLOTS;
    this.slots[beat.slot]!.add(beat);
    this.size++;
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.intervalMs / SLOTS);
      this.timer.unref();
    }
  }

  remove(beat: Beat): void {
    if (!this.slots[beat.slot]!.delete(beat)) return;
    if (--this.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    wheels.delete(this.intervalMs);
  }

  private tick(): void {
    const due = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % SLOTS;
    for (const beat of due) beat.run();
  }
}

const wheels = new Map<number, Wheel>();

export function startKeepalive(session: Http2Session, opts: KeepaliveOptions): () => void {
  const period = opts.listen ? opts.intervalMs / 2 : opts.intervalMs;
  let wheel = wheels.get(period);
  if (!wheel) wheels.set(period, (wheel = new Wheel(period)));
  let outstanding = false;
  let sentAt = 0;
  const answered = (err: Error | null, durationMs: number) => {
    if (err) return; // session closing; its own close handling takes over
    outstanding = false;
    opts.onRtt?.(durationMs);
  };
  const settingsAcked = () => {
    outstanding = false;
    opts.onRtt?.(performance.now() - sentAt);
  };
  const probe = () => {
    outstanding = true;
    if (session.closed) {
      // Node's ping() sends nothing on a closing session (GOAWAY sent or received): it only calls back
      // with a cancel, although HTTP/2 allows PING then. A SETTINGS frame must be acknowledged just the
      // same, and Node does send one on a closing session: its ACK is the answer.
      sentAt = performance.now();
      session.once('localSettings', settingsAcked);
      session.settings({});
    } else if (!session.ping(answered)) outstanding = false;
  };
  const dead = () => {
    stop();
    opts.onDead();
  };
  // Only a destroyed session stops the probes: a closing one (GOAWAY, streams still draining) must
  // still notice a peer that died meanwhile, or it lingers with its streams forever.
  const beat: Beat = {
    slot: 0,
    run: opts.listen ? listening() : () => {
      if (session.destroyed) return stop();
      if (outstanding) return dead();
      probe();
    },
  };
  /** The half-interval look of `listen`: heard since the last look, or quiet for how many looks. */
  function listening(): () => void {
    let heard = session.socket.bytesRead;
    let quiet = 0;
    let sinceProbe = 2 * RTT_EVERY - 1;
    return () => {
      if (session.destroyed) return stop();
      const read = session.socket.bytesRead;
      if (read !== heard) {
        heard = read;
        quiet = 0;
        outstanding = false;
      } else if (outstanding) return dead();
      else quiet++;
      if (++sinceProbe >= 2 * RTT_EVERY || quiet >= 2) {
        sinceProbe = 0;
        probe();
      }
    };
  }
  const owner = wheel;
  owner.add(beat);
  function stop(): void {
    owner.remove(beat);
  }
  session.once('close', stop);
  return stop;
}

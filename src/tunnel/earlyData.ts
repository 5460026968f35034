/**
 * Early data: a client's first bytes sent on its tunnel stream right behind the CONNECT HEADERS, before
 * the far end has answered, instead of after its 200. For a client that speaks first (TLS, HTTP,
 * kubectl; everything through a forward) the first byte then reaches the target one hub↔agent round
 * trip sooner. The far end holds what arrives before its target connection is up (an HTTP/2 stream
 * buffers it) and writes it once connected; a stream that is refused drops it, so nothing reaches a
 * target that was not admitted (admission and the agent's allow-list come before the dial).
 *
 * Until the stream is answered the bytes are also kept (up to EARLY_DATA_LIMIT; the client is paused
 * beyond that until the answer), so that a stream retried on another agent after a lost tunnel gets
 * them again from the start. Once answered, the client is left paused for relay() to take over.
 */
import type { Duplex } from 'node:stream';

/** At most this much is sent before the answer; the per-stream window (256 KiB) always has room for it. */
export const EARLY_DATA_LIMIT = 64 * 1024;

export class EarlyData {
  private kept: Buffer[] = [];
  private bytes = 0;
  private stream: Duplex | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.kept.push(chunk);
    this.bytes += chunk.length;
    if (!this.stream!.destroyed) this.stream!.write(chunk);
    if (this.bytes >= EARLY_DATA_LIMIT) this.client.pause();
  };

  /** `client`: paused or not yet flowing; bytes a door read past its own protocol are unshifted into it first. */
  constructor(private readonly client: Duplex) {}

  /** Bytes sent (or to be sent) ahead of the answer on the current stream. */
  get sent(): number {
    return this.bytes;
  }

  /** Sends everything the client sent so far to `stream`, then each new chunk as it arrives. */
  sendTo(stream: Duplex): void {
    this.detach();
    this.stream = stream;
    for (const chunk of this.kept) stream.write(chunk);
    if (this.client.destroyed || this.client.readableEnded) return;
    this.client.on('data', this.onData);
    if (this.bytes < EARLY_DATA_LIMIT) this.client.resume();
  }

  /**
   * Stops reading the client and leaves it paused. `answered`: the stream was accepted, the copies are
   * no longer needed; otherwise they are kept for the next stream.
   */
  stop(answered: boolean): void {
    this.detach();
    if (answered) this.kept = [];
  }

  private detach(): void {
    if (!this.stream) return;
    this.client.off('data', this.onData);
    this.client.pause();
    this.stream = undefined;
  }
}

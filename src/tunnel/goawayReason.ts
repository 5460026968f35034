/**
 * Why the hub refuses an agent, in the opaque data of its GOAWAY frame (JSON), so the agent can tell a
 * refusal retrying cannot fix (revoked, claim denied) from a plain GOAWAY (the hub draining, no data):
 *
 *   {"code":"WARREN_E_AGENT_REVOKED","message":"agent \"alpha\" was removed from the hub; join again with a new token"}
 */
import type { Refusal } from './protocol.js';

/** A GOAWAY frame carries at most a frame's worth (16 KiB by default); anything near that is not ours. */
export const MAX_GOAWAY_REASON_BYTES = 8192;
const MAX_CODE = 64;
const MAX_MESSAGE = 1000;

export function encodeGoawayReason(refusal: Refusal): Buffer {
  return Buffer.from(JSON.stringify({ code: refusal.code, message: refusal.message }), 'utf8');
}

/** The refusal in `data`, or undefined for no data or data that is not one (a plain GOAWAY). */
export function decodeGoawayReason(data: Uint8Array | undefined): Refusal | undefined {
  if (!data || data.length === 0 || data.length > MAX_GOAWAY_REASON_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { code, message } = parsed as Record<string, unknown>;
  if (typeof code !== 'string' || code.length === 0 || code.length > MAX_CODE || typeof message !== 'string') return undefined;
  return { code, message: message.length > MAX_MESSAGE ? message.slice(0, MAX_MESSAGE - 1) + '…' : message };
}

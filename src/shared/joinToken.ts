/**
 * The join token: everything an agent needs to find and trust the hub and to prove it may join.
 *
 *   wj1.aHR0cHM6Ly9odWIuZXhhbXBsZS5jb206ODQ0Mw.9d1c…b1f.3f2a9c01d4e5b6a7.Q2x…Vx
 *   └┬┘ └──────────── hub URL, base64url ────┘ └ CA pin ┘ └──── id ────┘ └ secret ┘
 *
 * - hub URL: where the agent dials (https://host:port), base64url without padding;
 * - CA pin: 64 hex digits, the SHA-256 of the hub CA certificate's DER bytes (the `sha256:` pin);
 * - id: 16 hex digits, the store key;
 * - secret: 32 random bytes, base64url; the hub keeps only its SHA-256.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface JoinToken {
  readonly hubUrl: string;
  /** `sha256:` + 64 hex digits. */
  readonly caPin: string;
  readonly id: string;
  readonly secret: string;
}

const PREFIX = 'wj1';

export function formatJoinToken(t: JoinToken): string {
  const url = Buffer.from(t.hubUrl, 'utf8').toString('base64url');
  return [PREFIX, url, t.caPin.replace(/^sha256:/, ''), t.id, t.secret].join('.');
}

/** Returns undefined for anything that is not a well-formed join token (never echoes it back). */
export function parseJoinToken(text: string): JoinToken | undefined {
  const parts = text.trim().split('.');
  if (parts.length !== 5 || parts[0] !== PREFIX) return undefined;
  const [, url, pin, id, secret] = parts as [string, string, string, string, string];
  if (!/^[0-9a-f]{64}$/.test(pin) || !/^[0-9a-f]{16}$/.test(id) || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return undefined;
  const hubUrl = Buffer.from(url, 'base64url').toString('utf8');
  try {
    const u = new URL(hubUrl);
    if (u.protocol !== 'https:') return undefined;
  } catch {
    return undefined;
  }
  return { hubUrl, caPin: `sha256:${pin}`, id, secret };
}

export function newJoinSecret(): { id: string; secret: string } {
  return { id: randomBytes(8).toString('hex'), secret: randomBytes(32).toString('base64url') };
}

/** The secret is 256 random bits, so a plain SHA-256 is a sufficient at-rest hash (no stretching needed). */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}

/** Constant-time comparison of two CA pins. */
export function pinsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.length === y.length && timingSafeEqual(x, y);
}

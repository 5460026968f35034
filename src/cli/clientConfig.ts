/**
 * Where client commands find the hub, their token and the hub CA: flags, then WARREN_HUB /
 * WARREN_TOKEN / WARREN_CA_FINGERPRINT, then the file `warren login` writes
 * ($WARREN_CONFIG, else $XDG_CONFIG_HOME/warren/config.json, else ~/.config/warren/config.json).
 * This module is the CLI's only reader of the environment.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { WarrenError } from '../shared/errors.js';
import { fingerprint } from '../pki/certInfo.js';
import { pinsEqual } from '../shared/joinToken.js';
import { fetchPinnedCa } from '../client/hubHttp.js';
import { proxyFor, type HubEndpoint } from '../tunnel/dialHub.js';

export interface ClientFlags {
  hub?: string | undefined;
  token?: string | undefined;
  caFingerprint?: string | undefined;
  caFile?: string | undefined;
}

const savedSchema = z.object({ hub: z.string(), token: z.string(), caPin: z.string(), caPem: z.string() });
export type SavedLogin = z.infer<typeof savedSchema>;

export const env: NodeJS.ProcessEnv = process.env;

export function loginFilePath(): string {
  if (env.WARREN_CONFIG) return path.resolve(env.WARREN_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'warren', 'config.json');
}

/** The saved login; a file that is not the JSON `warren login` wrote is a clear error, not an internal one. */
export function readLogin(): SavedLogin | undefined {
  const file = loginFilePath();
  if (!fs.existsSync(file)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    data = undefined;
  }
  const parsed = savedSchema.safeParse(data);
  if (!parsed.success) throw new WarrenError('WARREN_E_CONFIG', `${file} is damaged (not the JSON \`warren login\` writes): run \`warren login\` again, or remove the file and pass --hub/--token/--ca-fingerprint`);
  return parsed.data;
}

export function writeLogin(login: SavedLogin): string {
  const file = loginFilePath();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(login, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}

export function normalisePin(pin: string): string {
  const hex = pin.replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new WarrenError('WARREN_E_USAGE', '--ca-fingerprint must be sha256: followed by 64 hex digits');
  return `sha256:${hex}`;
}

export function parseHubUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `https://${text}`);
  } catch {
    throw new WarrenError('WARREN_E_USAGE', `hub "${text}" is not a URL like https://hub.example.com:8443`);
  }
  if (url.protocol !== 'https:') throw new WarrenError('WARREN_E_USAGE', 'the hub URL must be https://');
  return url;
}

export interface ResolvedClient {
  readonly endpoint: HubEndpoint;
  readonly token: string | undefined;
}

/** The hub a command would talk to (flag, environment, saved login), as given; undefined when none is. */
export function configuredHub(flags: ClientFlags): string | undefined {
  return flags.hub ?? env.WARREN_HUB ?? readLogin()?.hub;
}

/** Resolves hub, token and a verified CA for a command. */
export async function resolveClient(flags: ClientFlags, opts: { needToken?: boolean } = {}): Promise<ResolvedClient> {
  const saved = readLogin();
  const hubText = flags.hub ?? env.WARREN_HUB ?? saved?.hub;
  if (!hubText) throw new WarrenError('WARREN_E_CONFIG', 'no hub: pass --hub, set WARREN_HUB, or run `warren login --hub URL --token TOKEN`');
  const url = parseHubUrl(hubText);
  const token = flags.token ?? env.WARREN_TOKEN ?? saved?.token;
  if (opts.needToken !== false && !token) throw new WarrenError('WARREN_E_CONFIG', 'no access token: pass --token, set WARREN_TOKEN, or run `warren login`');
  const proxy = proxyFor(url, { httpsProxy: env.HTTPS_PROXY ?? env.https_proxy, noProxy: env.NO_PROXY ?? env.no_proxy });
  const base = { url, ...(proxy ? { proxy } : {}) };

  const pinText = flags.caFingerprint ?? env.WARREN_CA_FINGERPRINT;
  let ca: string;
  if (flags.caFile) {
    ca = fs.readFileSync(flags.caFile, 'utf8');
    if (pinText && !pinsEqual(fingerprint(ca), normalisePin(pinText))) throw new WarrenError('WARREN_E_CA_MISMATCH', `--ca-file does not match the CA fingerprint`);
  } else if (pinText) {
    const pin = normalisePin(pinText);
    ca = saved && pinsEqual(saved.caPin, pin) ? saved.caPem : await fetchPinnedCa(base, pin);
  } else if (saved) {
    ca = saved.caPem;
  } else {
    throw new WarrenError('WARREN_E_CONFIG', 'the hub CA is not pinned: pass --ca-fingerprint sha256:… (printed by `warren hub`), set WARREN_CA_FINGERPRINT, or run `warren login`');
  }
  return { endpoint: { ...base, ca }, token };
}

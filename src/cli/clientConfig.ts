/**
 * Where client commands find the hub, their token and the hub CA: flags, then WARREN_HUB /
 * WARREN_TOKEN / WARREN_CA_FINGERPRINT, then a context of the file `warren login` writes
 * ($WARREN_CONFIG, else $XDG_CONFIG_HOME/warren/config.json, else ~/.config/warren/config.json).
 * This module is the CLI's only reader of the environment.
 *
 * The file keeps one context per hub, like a kubeconfig, and which one is current:
 *
 *   { "currentContext": "hub.example.com:8443",
 *     "contexts": { "hub.example.com:8443": { "hub": "https://…", "token": "…", "caPin": "sha256:…", "caPem": "…" },
 *                   "lab": { … } } }
 *
 * `--context NAME` picks one for one command, and then its hub and token win over the environment. A
 * file from before contexts (one login: `{ hub, token, caPin, caPem }`) is read as one context named
 * after its hub, current, and written in the new shape at the next `warren login` or `use-context`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
  /** A context of the login file, instead of the current one. */
  context?: string | undefined;
}

export interface SavedLogin {
  hub: string;
  token: string;
  caPin: string;
  caPem: string;
}
const LOGIN_KEYS = ['hub', 'token', 'caPin', 'caPem'] as const satisfies readonly (keyof SavedLogin)[];

export interface LoginFile {
  currentContext?: string | undefined;
  contexts: Record<string, SavedLogin>;
}

// The file is checked here rather than with a zod schema: every client command reads it, `warren
// connect` too, which ssh starts once per connection, and loading zod is ~80 ms of a ~150 ms start
// (docs/benchmarks.md, finding 9). Its shape is a few strings. Unknown keys are dropped.
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function asLogin(v: unknown): SavedLogin | undefined {
  if (!isRecord(v) || !LOGIN_KEYS.every((key) => typeof v[key] === 'string')) return undefined;
  return Object.fromEntries(LOGIN_KEYS.map((key) => [key, v[key]])) as unknown as SavedLogin;
}

function asLoginFile(v: unknown): LoginFile | undefined {
  if (!isRecord(v) || !isRecord(v.contexts) || (v.currentContext !== undefined && typeof v.currentContext !== 'string')) return undefined;
  const contexts = Object.entries(v.contexts).map(([name, login]) => [name, asLogin(login)] as const);
  if (contexts.some(([, login]) => !login)) return undefined;
  return { ...(v.currentContext !== undefined ? { currentContext: v.currentContext } : {}), contexts: Object.fromEntries(contexts) as Record<string, SavedLogin> };
}

export const env: NodeJS.ProcessEnv = process.env;

export function loginFilePath(): string {
  if (env.WARREN_CONFIG) return path.resolve(env.WARREN_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'warren', 'config.json');
}

/** The name a login gets unless `--context` names it: the hub's host and port (`hub.example.com:8443`). */
export function defaultContextName(hubUrl: string): string {
  return new URL(hubUrl).host;
}

/** Every saved context; a file that is not the JSON `warren login` writes is a clear error, not an internal one. */
export function readLoginFile(): LoginFile {
  const file = loginFilePath();
  if (!fs.existsSync(file)) return { contexts: {} };
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    data = undefined;
  }
  const parsed = asLoginFile(data);
  if (parsed && (parsed.currentContext === undefined || Object.hasOwn(parsed.contexts, parsed.currentContext))) return parsed;
  const single = asLogin(data);
  if (single) {
    const name = defaultContextName(single.hub);
    return { currentContext: name, contexts: { [name]: single } };
  }
  throw new WarrenError('WARREN_E_CONFIG', `${file} is damaged (not the JSON \`warren login\` writes): run \`warren login\` again, or remove the file and pass --hub/--token/--ca-fingerprint`);
}

/** The context `name` (or the current one); undefined when none is saved. A name that is not saved is an error. */
export function readLogin(name?: string): SavedLogin | undefined {
  const saved = readLoginFile();
  if (name === undefined) return saved.currentContext === undefined ? undefined : saved.contexts[saved.currentContext];
  const login = Object.hasOwn(saved.contexts, name) ? saved.contexts[name] : undefined;
  if (!login) {
    const known = Object.keys(saved.contexts);
    throw new WarrenError('WARREN_E_CONFIG', `no context "${name}" in ${loginFilePath()} (${known.length ? `saved: ${known.join(', ')}` : 'none saved'}); \`warren login --context ${name} --hub URL …\` saves one`);
  }
  return login;
}

export function writeLoginFile(config: LoginFile): string {
  const file = loginFilePath();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}

/** Saves a login as context `name` (replacing one of that name) and makes it the current one. */
export function writeLogin(login: SavedLogin, name: string): string {
  const saved = readLoginFile();
  return writeLoginFile({ currentContext: name, contexts: { ...saved.contexts, [name]: login } });
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

/** The environment's hub, token and pin, unless `--context` chose a saved context over them. */
function fromEnv(flags: ClientFlags): { hub?: string | undefined; token?: string | undefined; caFingerprint?: string | undefined } {
  return flags.context === undefined ? { hub: env.WARREN_HUB, token: env.WARREN_TOKEN, caFingerprint: env.WARREN_CA_FINGERPRINT } : {};
}

/** The hub a command would talk to (flag, environment, saved context), as given; undefined when none is. */
export function configuredHub(flags: ClientFlags): string | undefined {
  return flags.hub ?? fromEnv(flags).hub ?? readLogin(flags.context)?.hub;
}

/** Resolves hub, token and a verified CA for a command. */
export async function resolveClient(flags: ClientFlags, opts: { needToken?: boolean } = {}): Promise<ResolvedClient> {
  const saved = readLogin(flags.context);
  const environment = fromEnv(flags);
  const hubText = flags.hub ?? environment.hub ?? saved?.hub;
  if (!hubText) throw new WarrenError('WARREN_E_CONFIG', 'no hub: pass --hub, set WARREN_HUB, or run `warren login --hub URL --token TOKEN`');
  const url = parseHubUrl(hubText);
  const token = flags.token ?? environment.token ?? saved?.token;
  if (opts.needToken !== false && !token) throw new WarrenError('WARREN_E_CONFIG', 'no access token: pass --token, set WARREN_TOKEN, or run `warren login`');
  const proxy = proxyFor(url, { httpsProxy: env.HTTPS_PROXY ?? env.https_proxy, noProxy: env.NO_PROXY ?? env.no_proxy });
  const base = { url, ...(proxy ? { proxy } : {}) };

  const pinText = flags.caFingerprint ?? environment.caFingerprint;
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

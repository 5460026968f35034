/**
 * The browser's side of the hub API: same-origin fetches carrying the session cookie, with the
 * session's CSRF token on every state-changing request. A 401 means the session is gone (signed out,
 * expired, or its access token revoked): back to the sign-in page.
 */

export interface Me {
  readonly user: string;
  readonly groups: readonly string[];
  readonly admin: boolean;
  readonly csrf: string;
  readonly expiresAt: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';

export function setCsrf(token: string): void {
  csrf = token;
}

/** The session's CSRF token, for requests that cannot carry the header (the web shell's WebSocket). */
export function csrfToken(): string {
  return csrf;
}

export function signInUrl(): string {
  return `/ui/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
}

async function errorOf(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { code?: string; message?: string };
    return new ApiError(res.status, body.code ?? 'WARREN_E_INTERNAL', body.message ?? res.statusText);
  } catch {
    return new ApiError(res.status, 'WARREN_E_INTERNAL', `${res.status} ${res.statusText}`);
  }
}

/** A request to the hub; `body` is sent as JSON. Resolves with the raw response when it is not JSON. */
export async function request(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: 'same-origin', signal: signal ?? null });
  if (res.status === 401 && !path.startsWith('/ui/session')) {
    location.assign(signInUrl());
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return (await (await request(method, path, body)).json()) as T;
}

/** Reads an NDJSON response line by line until it ends or `signal` aborts. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape of the rows it asked for
export async function followNdjson<T>(path: string, signal: AbortSignal, onRow: (row: T) => void): Promise<void> {
  const res = await request('GET', path, undefined, signal);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) onRow(JSON.parse(line) as T);
    }
  }
}

/** Saves `text` as a file through the browser's download. */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}

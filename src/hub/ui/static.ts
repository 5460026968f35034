/**
 * The built web UI (dist/ui, made by `npm run build`) served from memory: index.html for every page
 * path, the hashed assets under /ui/assets/ with long caching, and on every answer a CSP that allows
 * nothing from another origin.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { WarrenError } from '../../shared/errors.js';

/** dist/ui, from both src/hub/ui (tsx) and dist/hub/ui (built). */
const UI_DIR = fileURLToPath(new URL('../../../dist/ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

export const SECURITY_HEADERS: Record<string, string> = {
  // xterm.js sets element styles at run time, hence 'unsafe-inline' for styles only; no inline script.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

export class UiFiles {
  private files: Map<string, StaticFile> | undefined;

  constructor(private readonly dir = UI_DIR) {}

  private load(): Map<string, StaticFile> {
    if (this.files) return this.files;
    const files = new Map<string, StaticFile>();
    const walk = (dir: string, prefix: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name), `${prefix}${e.name}/`);
        else files.set(`${prefix}${e.name}`, { body: fs.readFileSync(path.join(dir, e.name)), type: TYPES[path.extname(e.name)] ?? 'application/octet-stream' });
      }
    };
    try {
      walk(this.dir, '');
    } catch (err) {
      throw new WarrenError('WARREN_E_UNAVAILABLE', 'the web UI is not built into dist/ui; run `npm run build`', undefined, { cause: err });
    }
    if (!files.has('index.html')) throw new WarrenError('WARREN_E_UNAVAILABLE', 'the web UI is not built into dist/ui; run `npm run build`');
    this.files = files;
    return files;
  }

  /** Serves /ui/assets/NAME; throws WARREN_E_NOT_FOUND for anything else. */
  sendAsset(res: ServerResponse, name: string): void {
    const file = this.load().get(`assets/${name}`);
    if (!file || name.includes('/')) throw new WarrenError('WARREN_E_NOT_FOUND', `no web UI asset ${name}`);
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'public, max-age=31536000, immutable' });
    res.end(res.req.method === 'HEAD' ? undefined : file.body);
  }

  sendIndex(res: ServerResponse): void {
    const file = this.load().get('index.html')!;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache' });
    res.end(res.req.method === 'HEAD' ? undefined : file.body);
  }
}

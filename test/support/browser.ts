/**
 * Real Chromium for end-to-end tests (Debian's `chromium` driven by playwright-core), optionally inside a
 * network namespace: a two-line wrapper runs the browser under `ip netns exec`, and playwright still
 * drives it over its pipe. Screenshots go to test-artifacts/ (gitignored), named by the test.
 *
 * @module
 * @example
 *   const browser = await launchBrowser({ netns: lab.ns('public') });
 *   after(() => browser.close());
 *   await browser.page.goto(`${hub.url}/ui/`);
 *   await browser.screenshot('agents');
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { tempDir } from './warren.js';

const CHROMIUM = '/usr/bin/chromium';
/** The flags this machine's Chromium needs headless (see the project's Node 20 notes). */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Where downloads are saved. */
  readonly downloadsDir: string;
  /** Saves a PNG of the page as test-artifacts/PREFIX-NAME.png and returns its path. */
  screenshot(name: string, opts?: { fullPage?: boolean }): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(opts: { netns?: string; artifactPrefix: string; viewport?: { width: number; height: number } }): Promise<Browser> {
  const profile = tempDir('chromium');
  let executablePath = CHROMIUM;
  if (opts.netns) {
    executablePath = path.join(profile, 'chromium-in-netns.sh');
    fs.writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  }
  const downloadsDir = path.join(profile, 'downloads');
  fs.mkdirSync(downloadsDir);
  const context = await chromium.launchPersistentContext(path.join(profile, 'profile'), {
    executablePath,
    args: CHROMIUM_ARGS,
    // The hub's CA is its own; the page's origin is still https, so Secure cookies and the CSP apply.
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    downloadsPath: downloadsDir,
    viewport: opts.viewport ?? { width: 1280, height: 800 },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return {
    context,
    page,
    downloadsDir,
    async screenshot(name, o = {}) {
      const file = path.join(ARTIFACTS_DIR, `${opts.artifactPrefix}-${name}.png`);
      await page.screenshot({ path: file, fullPage: o.fullPage ?? false });
      return file;
    },
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

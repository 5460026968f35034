/**
 * Real Chromium for end-to-end tests (Debian's `chromium` driven by playwright-core), optionally inside a
 * network namespace: a two-line wrapper runs the browser under `ip netns exec`, and playwright still
 * drives it over its pipe. Screenshots go to test-artifacts/ (gitignored), named by the test. What the
 * page logged, threw and failed to load is kept, so a failed test can say what the browser saw
 * (`reportFailure`).
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

/** How many of the page's console messages, errors and failed requests are kept for a failure report. */
const SEEN_KEPT = 200;

export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Where downloads are saved. */
  readonly downloadsDir: string;
  /** Saves a PNG of the page as test-artifacts/PREFIX-NAME.png and returns its path. */
  screenshot(name: string, opts?: { fullPage?: boolean }): Promise<string>;
  /**
   * For a failed test: saves test-artifacts/PREFIX-failed-NAME.png and writes to stderr the page's URL,
   * its console messages, uncaught errors, failed requests and answers ≥ 400 (most recent last).
   */
  reportFailure(name: string): Promise<void>;
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
  const seen: string[] = [];
  const note = (line: string): void => {
    seen.push(`${new Date().toISOString()} ${line}`);
    if (seen.length > SEEN_KEPT) seen.shift();
  };
  page.on('console', (m) => note(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => note(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => note(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => {
    if (r.status() >= 400) note(`answer ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  const screenshot = async (name: string, o: { fullPage?: boolean } = {}): Promise<string> => {
    const file = path.join(ARTIFACTS_DIR, `${opts.artifactPrefix}-${name}.png`);
    await page.screenshot({ path: file, fullPage: o.fullPage ?? false });
    return file;
  };
  return {
    context,
    page,
    downloadsDir,
    screenshot,
    async reportFailure(name) {
      const shot = await screenshot(`failed-${name.replace(/[^\w-]+/g, '-').slice(0, 80)}`).catch((e: unknown) => `none (${String(e)})`);
      process.stderr.write(`browser after the failed test "${name}": page ${page.url()}, screenshot ${shot}\n${seen.map((l) => `  ${l}\n`).join('') || '  (nothing logged, thrown or failed)\n'}`);
    },
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

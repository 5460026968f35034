// Acceptance for the web UI at /ui/, in real Chromium (playwright-core), against a real hub and agents:
//
//   public 10.10.0.1 (hub :8443, Chromium, agents started by the test) ── router (NAT) ── node1 10.20.1.2 (agent node1, sshd :22)
//
// Sign-in and session cookie, live agent status (SSE), CSRF refusals, the sign-in redirect. Screenshots
// of each page are saved in test-artifacts/web-ui-*.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { natLab, type NatLab } from '../support/netns.js';
import { launchBrowser, type Browser } from '../support/browser.js';
import { startAgent, startHub, type HubProc } from '../support/warren.js';

const HUB_PORT = 8443;
const UI_TIMEOUT_MS = 15_000;

/** The status badge of an agent's row on the Agents page. */
async function waitAgentStatus(page: Page, agent: string, status: 'online' | 'offline'): Promise<void> {
  await page.locator(`tr[data-agent="${agent}"] [data-testid=status]`, { hasText: status }).waitFor({ timeout: UI_TIMEOUT_MS });
}

async function signIn(page: Page, hub: HubProc, token: string): Promise<void> {
  await page.goto(`${hub.url}/ui/signin`);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor({ timeout: UI_TIMEOUT_MS });
}

describe('web UI in Chromium', () => {
  let nat: NatLab;
  let hub: HubProc;
  let browser: Browser;
  const dirs: string[] = [];

  before(async () => {
    nat = await natLab({ sites: ['node1'] });
    hub = await startHub({ group: nat.lab.group, netns: nat.lab.ns('public'), listen: `${nat.public.ip}:${HUB_PORT}`, publicUrl: `https://${nat.public.ip}:${HUB_PORT}` });
    dirs.push(hub.dataDir);
    browser = await launchBrowser({ netns: nat.lab.ns('public'), artifactPrefix: 'web-ui' });
  });

  after(async () => {
    await browser?.close();
    await nat?.destroy();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a signed-out user is sent to the sign-in page, and a wrong token is refused there', async () => {
    const { page } = browser;
    const res = await page.goto(`${hub.url}/ui/agents`);
    assert.equal(new URL(page.url()).pathname, '/ui/signin');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/ui/agents');
    assert.match(res!.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    await page.getByLabel('Access token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'WARREN_E_UNAUTHENTICATED' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await browser.screenshot('signin');
  });

  it('signs in; an agent appears online without a reload and goes offline when killed', async () => {
    const { page } = browser;
    await signIn(page, hub, hub.adminToken);
    assert.equal(new URL(page.url()).pathname, '/ui/');
    const cookie = (await browser.context.cookies()).find((c) => c.name === '__Host-warren-session');
    assert.ok(cookie, 'the session cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');

    await page.getByRole('heading', { name: 'Agents' }).waitFor();
    const agent = await startAgent({ group: nat.lab.group, hub, name: 'edge1', netns: nat.lab.ns('public'), args: ['--cluster', 'alpha', '--route', '10.77.0.0/16'] });
    dirs.push(agent.dataDir);
    await waitAgentStatus(page, 'edge1', 'online');
    const row = page.locator('tr[data-agent="edge1"]');
    assert.match(await row.innerText(), /alpha/);
    assert.match(await row.innerText(), /10\.77\.0\.0\/16/);
    await browser.screenshot('agents');

    await nat.lab.group.kill(agent.child);
    await waitAgentStatus(page, 'edge1', 'offline');
  });

  it('refuses a state-changing request made with the session cookie but without the CSRF token', async () => {
    const { page } = browser;
    const refused = await page.evaluate(async () => {
      const r = await fetch('/api/v1/join-tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return { status: r.status, body: (await r.json()) as { code: string } };
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'WARREN_E_CSRF');

    // The right token from another origin is refused too (a browser sets Origin; curl stands in for it here).
    const session = (await browser.context.cookies()).find((c) => c.name === '__Host-warren-session')!;
    const csrf = await page.evaluate(async () => ((await (await fetch('/ui/session')).json()) as { csrf: string }).csrf);
    const curl = (extra: string[]) =>
      nat.lab.exec('public', 'curl', ['-sk', '-X', 'POST', '-H', `cookie: ${session.name}=${session.value}`, '-H', 'content-type: application/json', '-H', `x-csrf-token: ${csrf}`, ...extra, '-d', '{}', `${hub.url}/api/v1/join-tokens`]);
    const foreign = await curl(['-H', 'origin: https://evil.example']);
    assert.equal(JSON.parse(foreign.stdout).code, 'WARREN_E_CSRF', foreign.stdout);
    const same = await curl(['-H', `origin: ${hub.url}`]);
    assert.match(JSON.parse(same.stdout).token, /^wj1\./, same.stdout);
  });
});

// Acceptance for the web UI at /ui/, in real Chromium (playwright-core), against a real hub and agents:
//
//   public 10.10.0.1 (hub :8443, Chromium, agents started by the test) ── router (NAT) ── node1 10.20.1.2 (agent node1, sshd :22)
//
// Sign-in and session cookie, live agent status (SSE), CSRF refusals, the sign-in redirect, and the web
// shell to node1's sshd through its agent (xterm.js, WebSocket, the hub's SSH client). Screenshots of
// each page are saved in test-artifacts/web-ui-*.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Download, Page } from 'playwright-core';
import YAML from 'yaml';
import { natLab, type NatLab } from '../support/netns.js';
import { launchBrowser, type Browser } from '../support/browser.js';
import { startSshd } from '../support/sshd.js';
import { waitForAudit } from '../support/audit.js';
import { accessToken, cli, cliJson, startAgent, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

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

/** Clicks `trigger` and returns the saved download's text. */
async function downloadText(page: Page, trigger: () => Promise<void>): Promise<{ name: string; text: string }> {
  const waiting = page.waitForEvent('download', { timeout: UI_TIMEOUT_MS });
  await trigger();
  const download: Download = await waiting;
  const file = await download.path();
  return { name: download.suggestedFilename(), text: fs.readFileSync(file, 'utf8') };
}

/** Waits until a row of the terminal (xterm.js renders DOM rows) reads exactly `line`. */
async function waitTerminalLine(page: Page, line: string): Promise<void> {
  const exact = new RegExp(`^\\s*${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s*$`);
  await page.locator('.xterm-rows > div', { hasText: exact }).first().waitFor({ timeout: UI_TIMEOUT_MS });
}

async function goTo(page: Page, title: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor({ timeout: UI_TIMEOUT_MS });
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

  // `passed` is Node's (20.12+), not yet in the @types/node used here.
  afterEach(async (t) => {
    if ('passed' in t && t.passed === false) await browser?.reportFailure(t.name);
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

  it('creates a join token; the copied command starts an agent that appears on the Agents page', async () => {
    const { page } = browser;
    await goTo(page, 'Add agent');
    await page.getByLabel('Agent name').fill('joined1');
    await page.getByRole('button', { name: 'Create join token' }).click();
    // What the Copy button copies (headless Chromium here has no clipboard; the button then selects it).
    await page.getByRole('button', { name: 'Copy agent command' }).click();
    const command = await page.getByLabel('agent command', { exact: true }).innerText();
    assert.match(command, /^WARREN_JOIN_TOKEN=wj1\.\S+ warren agent --name joined1$/);
    await browser.screenshot('add-agent');

    // Run as a user would: `warren` on the PATH, the agent's identity in ./warren-agent.
    const work = tempDir('web-ui-joined');
    dirs.push(work);
    fs.symlinkSync(WARREN_BIN, path.join(work, 'warren'));
    const PATH = `${work}:${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`;
    nat.lab.group.spawn('sh', ['-c', command], { netns: nat.lab.ns('public'), cwd: work, env: { ...process.env, PATH } });
    await goTo(page, 'Agents');
    await waitAgentStatus(page, 'joined1', 'online');
  });

  it('downloads a kubeconfig and a Kubernetes manifest', async () => {
    const { page } = browser;
    await goTo(page, 'Clusters');
    const kube = await downloadText(page, () => page.getByRole('link', { name: 'Download kubeconfig for alpha' }).click());
    assert.equal(kube.name, 'warren-admin.kubeconfig');
    const config = YAML.parse(kube.text);
    assert.equal(config.kind, 'Config');
    assert.equal(config.clusters[0].cluster.server, `${hub.url}/k8s/clusters/alpha`);
    assert.equal(Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), fs.readFileSync(hub.caPath, 'utf8'));
    assert.equal(config.users[0].user.token, hub.adminToken);
    await browser.screenshot('clusters');

    await goTo(page, 'Add agent');
    await page.getByLabel('Cluster name').fill('beta');
    const manifest = await downloadText(page, () => page.getByRole('button', { name: 'Download manifest' }).click());
    assert.equal(manifest.name, 'warren-agent-beta.yaml');
    const docs = YAML.parseAllDocuments(manifest.text).map((d) => d.toJS());
    const workload = docs.find((d) => d.kind === 'StatefulSet');
    assert.equal(workload?.metadata.namespace, 'warren-system', manifest.text);
    assert.equal(workload.spec.replicas, 2);
    const secret = docs.find((d) => d.kind === 'Secret');
    const token = String(secret.stringData?.['join-token'] ?? Buffer.from(Object.values(secret.data as Record<string, string>)[0]!, 'base64')).trim();
    // The token in the manifest is a real one, for cluster beta only.
    const tokens = JSON.parse((await cli(hub, ['join-token', 'ls', '-o', 'json'])).stdout);
    assert.ok(tokens.some((t: { id: string; uses: number | null; authority: { clusters: string[] } }) => token.includes(t.id) && t.authority.clusters.join() === 'beta' && t.uses === null), manifest.text);
  });

  it('a non-admin sees exactly what their grants reach, and nothing of other users', async () => {
    const { page } = browser;
    for (const args of [
      ['grant', '--user', 'dev', '--agent', 'edge1', '--ports', '22,8080'],
      ['grant', '--user', 'dev', '--cluster', 'alpha'],
      ['grant', '--user', 'other', '--agent', 'joined1', '--ports', '22'],
    ]) {
      const r = await cli(hub, args);
      assert.equal(r.code, 0, r.stderr);
    }
    const devToken = await accessToken(hub, 'dev', ['team']);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/signin/);
    await signIn(page, hub, devToken);
    await page.getByRole('heading', { level: 1, name: 'My access' }).waitFor();
    await page.locator('[data-target="edge1"]').waitFor({ timeout: UI_TIMEOUT_MS });
    const nav = await page.getByRole('navigation', { name: 'Pages' }).innerText();
    assert.deepEqual(nav.split('\n').map((l) => l.trim()).filter(Boolean), ['Clusters', 'My access', 'Audit']);
    assert.deepEqual(await page.locator('[data-target]').evaluateAll((els) => els.map((e) => e.getAttribute('data-target'))), ['edge1']);
    assert.deepEqual(await page.locator('[data-cluster]').evaluateAll((els) => els.map((e) => e.getAttribute('data-cluster'))), ['alpha']);
    const text = await page.locator('main').innerText();
    assert.match(text, /ssh -o ProxyCommand='warren connect %h:%p' root@edge1/);
    assert.match(text, /http:\/\/edge1:22\//);
    assert.match(text, /kubectl --kubeconfig alpha\.kubeconfig/);
    assert.ok(!text.includes('joined1') && !text.includes('other'), text);
    await browser.screenshot('my-access');

    const adminOnly = await page.evaluate(async () => Promise.all(['/api/v1/grants', '/api/v1/agents', '/api/v1/tokens', '/ui/events/agents'].map(async (p) => (await fetch(p)).status)));
    assert.deepEqual(adminOnly, [403, 403, 403, 403]);

    // Audit: only the user's own rows.
    await goTo(page, 'Audit');
    await page.getByRole('region', { name: /Audit/ }).waitFor();
    const users = await page.locator('tr[data-audit-id] td:nth-child(3)').allInnerTexts();
    assert.ok(users.every((u) => u === 'dev'), users.join());

    await page.setViewportSize({ width: 390, height: 844 });
    await goTo(page, 'My access');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px wide`);
    await browser.screenshot('my-access-390');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/signin/);
  });

  it('opens a web shell to a node behind NAT from My access: `hostname` runs there, and the Audit page shows the session', async () => {
    const { page } = browser;
    // node1: its agent (also a gateway for its own address, for the Rules page) and an sshd with a host
    // name of its own, in the NATed namespace.
    const agent = await startAgent({
      group: nat.lab.group, hub, name: 'node1', netns: nat.lab.ns('node1'), args: ['--source-ip', nat.site.ip, '--allow', `localhost,${nat.site.ip}`],
    });
    dirs.push(agent.dataDir);
    const sshd = await startSshd({ group: nat.lab.group, netns: nat.lab.ns('node1'), host: '0.0.0.0', hostname: 'node1-shell' });
    dirs.push(sshd.dir);
    const g = await cli(hub, ['grant', '--user', 'ops', '--agent', 'node1', '--ports', '22']);
    assert.equal(g.code, 0, g.stderr);
    const siteNs = (await nat.lab.exec('node1', 'readlink', ['/proc/self/ns/net'])).stdout.trim();

    await signIn(page, hub, await accessToken(hub, 'ops'));
    await page.getByRole('heading', { level: 1, name: 'My access' }).waitFor();
    await page.getByRole('link', { name: 'Open a web shell to node1' }).click();
    await page.getByRole('heading', { level: 1, name: 'Web shell' }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.getByLabel('Target', { exact: true }).inputValue(), 'node1:22');
    await page.getByLabel('Login', { exact: true }).fill('root');
    await page.getByRole('radio', { name: 'Private key' }).check();
    const key = page.getByLabel('SSH private key');
    await key.fill(fs.readFileSync(sshd.clientKeyPath, 'utf8'));
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByTestId('shell-status').filter({ hasText: /Connected to node1:22 through agent node1 · host key SHA256:/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await key.inputValue(), '', 'the page forgets the key once it is sent');

    await page.keyboard.type('hostname\n');
    await waitTerminalLine(page, 'node1-shell');
    await page.keyboard.type('readlink /proc/self/ns/net\n');
    await waitTerminalLine(page, siteNs);
    await browser.screenshot('web-shell');
    await page.keyboard.type('exit\n');
    await page.getByTestId('shell-status').filter({ hasText: 'Session ended: shell exited with status 0' }).waitFor({ timeout: UI_TIMEOUT_MS });

    const ended = await waitForAudit(hub, (r) => r.user === 'ops' && r.target === 'node1:22' && (r.reason ?? '').startsWith('ended:'), 'the web shell session end', 10_000, 'shell');
    assert.equal(ended.result, 'ok');
    assert.equal(ended.agent, 'node1');
    assert.equal(ended.reason, 'ended: shell exited with status 0 (login root)');
    assert.ok((ended.bytesIn ?? 0) >= 'hostname\nreadlink /proc/self/ns/net\nexit\n'.length, `bytes typed: ${ended.bytesIn}`);
    assert.ok((ended.bytesOut ?? 0) > 0);
    // The opener's own row for the SSH stream, door web-shell.
    await waitForAudit(hub, (r) => r.user === 'ops' && r.door === 'web-shell' && r.agent === 'node1' && r.result === 'ok', 'the web shell stream');

    await goTo(page, 'Audit');
    const rows = page.locator('tr[data-audit-id]', { hasText: 'node1:22' }).filter({ hasText: 'shell' });
    await rows.filter({ hasText: /started: login root, host key SHA256:/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    await rows.filter({ hasText: 'ended: shell exited with status 0 (login root)' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await browser.screenshot('audit');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/signin/);
  });

  it('refuses a web shell to a node the user has no grant for, with the reason in the page', async () => {
    const { page } = browser;
    await signIn(page, hub, await accessToken(hub, 'dev', ['team']));
    await page.goto(`${hub.url}/ui/shell?target=node1:22`);
    await page.getByLabel('Login', { exact: true }).fill('root');
    await page.getByLabel('SSH password').fill('not-stored');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: 'user "dev" has no grant for node1:22 through agent "node1" [WARREN_E_FORBIDDEN]' })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await browser.screenshot('web-shell-refused');
    await waitForAudit(hub, (r) => r.user === 'dev' && r.door === 'web-shell' && r.target === 'node1:22' && r.result === 'denied', 'the refused web shell stream');
  });

  it('Rules: an egress rule with its live state, deleted from the page; Agents shows open streams and bytes', async () => {
    const { page } = browser;
    const ENTRY_PORT = 2222;
    const r = await cli(hub, ['egress', 'create', 'ssh-out', '--gateway', 'node1', '--target', `${nat.site.ip}:22`, '--source-ip', nat.site.ip, '--entry', `hub:${ENTRY_PORT}`]);
    assert.equal(r.code, 0, r.stderr);
    await signIn(page, hub, hub.adminToken);
    await goTo(page, 'Rules');
    const row = page.locator('tr[data-rule="ssh-out"]');
    await row.getByTestId('state').filter({ hasText: 'listening' }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await row.innerText(), new RegExp(`egress\\s+listening\\s+node1\\s+${nat.site.ip.replace(/\./g, '\\.')}`));

    // A connection through the entry reads node1's SSH banner; the page shows it without a reload.
    const banner = await nat.lab.exec('public', process.execPath, ['-e', `
      const s = require('net').connect(${ENTRY_PORT}, '${nat.public.ip}');
      s.once('data', (d) => { process.stdout.write(d.toString().split('\\r\\n')[0]); s.destroy(); });
      setTimeout(() => process.exit(3), 10000).unref();`]);
    assert.match(banner.stdout, /^SSH-2\.0-OpenSSH/, banner.stderr);
    await row.locator('td', { hasText: /^1$/ }).first().waitFor({ timeout: UI_TIMEOUT_MS });
    await browser.screenshot('rules');

    await row.getByRole('button', { name: 'Delete egress rule ssh-out' }).click();
    await row.getByRole('button', { name: 'Confirm: Delete egress rule ssh-out' }).click();
    await row.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    assert.deepEqual(await cliJson(hub, ['egress', 'ls', '-o', 'json']), []);

    await goTo(page, 'Agents');
    const node1 = page.locator('tr[data-agent="node1"]');
    await node1.getByTestId('status').filter({ hasText: 'online' }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await node1.getByTestId('bytes').innerText(), /^\d+(\.\d)? (B|KiB|MiB) \/ \d+(\.\d)? (B|KiB|MiB)$/);
    assert.match(await node1.getByTestId('streams').innerText(), /^\d+$/);
  });

  it('keyboard: sign-in and the web shell form by Tab alone; every form control on every page is labelled; new pages fit 390 px', async () => {
    const { page } = browser;
    const focused = () => page.evaluate(() => {
      const el = document.activeElement as HTMLInputElement | null;
      return el?.getAttribute('name') ?? el?.textContent?.trim() ?? '';
    });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/signin/);
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'token');
    await page.keyboard.type(hub.adminToken);
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Sign in');
    await page.keyboard.press('Enter');
    await page.getByTestId('who').waitFor({ timeout: UI_TIMEOUT_MS });

    // The web shell form, from the skip link on: every control in order, the Connect button last.
    await page.goto(`${hub.url}/ui/shell?target=node1:22`);
    await page.getByRole('heading', { level: 1, name: 'Web shell' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Skip to content');
    await page.keyboard.press('Enter');
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab');
      order.push(await focused());
    }
    assert.deepEqual(order, ['target', 'login', 'method', 'password', 'hostKey', 'Connect']);

    const unlabelled = () => page.evaluate(() =>
      Array.from(document.querySelectorAll('input, select, textarea'))
        .filter((el) => {
          const labels = (el as HTMLInputElement).labels;
          return !(labels && Array.from(labels).some((l) => l.textContent.trim())) && !el.getAttribute('aria-label')?.trim() && !el.getAttribute('aria-labelledby');
        })
        .map((el) => el.outerHTML.slice(0, 120)),
    );
    assert.deepEqual(await unlabelled(), [], 'web shell');
    for (const title of ['Agents', 'Add agent', 'Clusters', 'My access', 'Access', 'Rules', 'Audit']) {
      await goTo(page, title);
      await page.locator('main section').first().waitFor({ timeout: UI_TIMEOUT_MS });
      assert.deepEqual(await unlabelled(), [], title);
    }

    await page.setViewportSize({ width: 390, height: 844 });
    for (const [path, name] of [['/ui/shell?target=node1:22', 'web-shell-390'], ['/ui/rules', 'rules-390'], ['/ui/agents', 'agents-390']] as const) {
      await page.goto(`${hub.url}${path}`);
      await page.getByTestId('who').waitFor({ timeout: UI_TIMEOUT_MS });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${path} scrolls sideways by ${overflow} px at 390 px wide`);
      await browser.screenshot(name);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});

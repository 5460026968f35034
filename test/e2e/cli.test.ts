// The CLI as a kubectl user expects it, against a real hub: one noun per resource with the other number
// accepted, usage errors (the client's and the hub's) exit 2 with one line, tables by default.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import { ChildGroup, run } from '../support/proc.js';
import { VERSION } from '../../src/shared/version.js';
import { cli, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

describe('warren CLI conventions', () => {
  const group = new ChildGroup();
  let hub: HubProc;
  before(async () => {
    hub = await startHub({ group });
  });
  after(() => group.killAll());

  /** Exit 2, exactly one line on stderr, matching `pattern`. */
  async function usageError(args: readonly string[], pattern: RegExp): Promise<string> {
    const r = await cli(hub, args);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(r.code, 2, `warren ${args.join(' ')}: ${r.stderr}`);
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, pattern);
    return lines[0]!;
  }

  it('validation errors found by the hub exit 2 with one line that names the field once', async () => {
    const ttl = await usageError(['token', 'create', '--user', 'ana', '--ttl', '0'], /^error: ttl must be a duration/);
    assert.doesNotMatch(ttl, /ttl: ttl/);
    const ports = await usageError(['grant', '--user', 'ana', '--agent', 'x', '--ports', '99999'], /^error: ports must/);
    assert.doesNotMatch(ports, /ports: ports/);
    const since = await usageError(['audit', '--since', 'banana'], /^error: since\b.*duration/);
    assert.doesNotMatch(since, /since: since/);
  });

  it('an unknown command keeps commander\'s suggestion on its one line', async () => {
    await usageError(['tokn', 'ls'], /^error: unknown command 'tokn' \(Did you mean token\?\)/);
  });

  it('singular and plural reach the same resource', async () => {
    const created = await cli(hub, ['tokens', 'create', '--user', 'ana']);
    assert.equal(created.code, 0, created.stderr);
    const ls = await cli(hub, ['token', 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^ID\s+USER\s+GROUPS/);
    assert.match(ls.stdout, /\bana\b/);
    for (const args of [['agent', 'ls'], ['grant', 'ls'], ['forward', 'ls']]) {
      const r = await cli(hub, args);
      assert.equal(r.code, 0, `warren ${args.join(' ')}: ${r.stderr}`);
    }
    // `warren agent` still runs an agent, `warren forward` a local listener: their own usage errors.
    await usageError(['forward', 'nonsense'], /^error: /);
  });

  it('show prints a table by default; -o is refused where nothing structured is printed', async () => {
    const g = await cli(hub, ['grants', 'create', '--user', 'cy', '--agent', 'site-1', '-o', 'json']);
    const id = (JSON.parse(g.stdout) as { id: string }).id;
    const ls = await cli(hub, ['grants', 'ls']);
    assert.match(ls.stdout, new RegExp(`^ID\\s+SUBJECT[^\\n]*\\n(.*\\n)*${id}\\s+user:cy`));
    await usageError(['grants', 'rm', id, '-o', 'json'], /^error: unknown option '-o'/);
  });

  it('version prints the client\'s and the hub\'s, and the client\'s alone (exit 1, and why) when the hub cannot be asked', async () => {
    const table = await cli(hub, ['version']);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stdout, `Client version: ${VERSION}\nHub version:    ${VERSION} (${hub.url})\n`);
    const json = await cli(hub, ['version', '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout), { client: { version: VERSION }, hub: { url: hub.url, version: VERSION } });

    const down = await cli(hub, ['version', '--hub', 'https://127.0.0.1:1']);
    assert.equal(down.code, 1, down.stderr);
    assert.equal(down.stdout, `Client version: ${VERSION}\nHub version:    unknown\n`);
    assert.match(down.stderr, /^warren: cannot ask the hub at https:\/\/127\.0\.0\.1:1 for its version: cannot connect to hub 127\.0\.0\.1:1: connection refused \(is the hub running\?\)\n$/);
  });

  it('login keeps one context per hub; config get-contexts, use-context, current-context and --context choose among them', { timeout: 90_000 }, async () => {
    const lab = await startHub({ group });
    const file = path.join(tempDir('contexts'), 'config.json');
    // Nothing from the environment: every hub, token and pin comes from the saved contexts.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WARREN_')));
    const warren = (args: readonly string[]) => run(process.execPath, [WARREN_BIN, ...args], { env: { ...clean, WARREN_CONFIG: file }, timeoutMs: 30_000 });
    const ok = async (args: readonly string[]) => {
      const r = await warren(args);
      assert.equal(r.code, 0, `warren ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const main = new URL(hub.url).host;

    assert.match(await ok(['login', '--hub', hub.url, '--token', hub.adminToken, '--ca-fingerprint', hub.caPin]), new RegExp(`as context "${main.replace(/\./g, '\\.')}" \\(current\\)\\n$`));
    await ok(['login', '--context', 'lab', '--hub', lab.url, '--token', lab.adminToken, '--ca-fingerprint', lab.caPin]);
    assert.deepEqual(JSON.parse(await ok(['config', 'get-contexts', '-o', 'json'])), [
      { name: main, current: false, hub: hub.url, caFingerprint: hub.caPin },
      { name: 'lab', current: true, hub: lab.url, caFingerprint: lab.caPin },
    ].sort((a, b) => a.name.localeCompare(b.name)));
    assert.match(await ok(['config', 'get-contexts']), new RegExp(`^CURRENT  NAME\\s+HUB\\n(.*\\n)*\\*\\s+lab\\s+${lab.url}\\n`));
    assert.equal(await ok(['config', 'current-context']), 'lab\n');

    // Each command talks to the hub of its context: the current one, or the one --context names.
    const hubOf = (whoami: string) => /^hub\s+(\S+)/m.exec(whoami)?.[1];
    assert.equal(hubOf(await ok(['whoami'])), lab.url);
    assert.equal(hubOf(await ok(['whoami', '--context', main])), hub.url);
    assert.equal(await ok(['config', 'use-context', main]), `Switched to context "${main}" (${hub.url}).\n`);
    assert.equal(hubOf(await ok(['whoami'])), hub.url);
    assert.equal(await ok(['config', 'current-context']), `${main}\n`);

    const unknown = await warren(['config', 'use-context', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: no context "nope" \(saved: .*lab.*\); `warren config get-contexts` lists them\n$/);
    const badFlag = await warren(['whoami', '--context', 'nope']);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.stderr, /^warren: no context "nope" in \S+ \(saved: .*\); `warren login --context nope --hub URL …` saves one \[WARREN_E_CONFIG\]\n$/);
  });
});

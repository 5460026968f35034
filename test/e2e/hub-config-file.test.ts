// `warren hub --config FILE`: a YAML file with the hub's options, keyed by the flag names without --.
// Flags given on the command line win over the file; a key the hub does not know, or a bad value,
// stops the hub at start-up with one line naming the key.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ChildGroup, run, waitForLine } from '../support/proc.js';
import { startHub, tempDir, WARREN_BIN } from '../support/warren.js';

describe('warren hub --config FILE', () => {
  const procs = new ChildGroup();
  const dir = tempDir('hub-config-file');
  after(async () => {
    await procs.killAll();
    procs.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('the hub runs with the options of the file, and flags given win over it', async () => {
    // 192.0.2.1 is on no interface here: the hub could not start if the file's listen were used over --listen.
    const config = write('hub.yaml', 'listen: 192.0.2.1:8443\nsocks-listen: 127.0.0.1:0\nmax-handshakes: 16\n');
    const hub = await startHub({ group: procs, dataDir: path.join(dir, 'data'), args: ['--config', config] });
    assert.match(hub.url, /^https:\/\/127\.0\.0\.1:\d+$/, "bound where --listen said, not the file's listen");
    await waitForLine(hub.child, /"socksListen":"127\.0\.0\.1:\d+".*"msg":"socks5 door listening"/, { timeoutMs: 5_000 });
  });

  for (const [what, name, text, message] of [
    ['an unknown key', 'bad-key.yaml', 'listen: 127.0.0.1:0\nmax-handshake: 16\n', /bad-key\.yaml: unknown key "max-handshake"/],
    ['a bad value', 'bad-value.yaml', 'max-handshakes: lots\n', /bad-value\.yaml: max-handshakes: "lots" is not a whole number/],
  ] as const) {
    it(`${what} stops the hub at start-up: exit 1, one line naming the key`, async () => {
      const file = write(name, text);
      const r = await run(process.execPath, [WARREN_BIN, 'hub', '--config', file, '--data-dir', path.join(dir, 'never')], { timeoutMs: 15_000 });
      assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
      assert.match(r.stderr, /^[^\n]+\[WARREN_E_CONFIG\]\n$/, `one line on stderr: ${JSON.stringify(r.stderr)}`);
      assert.match(r.stderr, message);
      assert.equal(fs.existsSync(path.join(dir, 'never')), false, 'nothing was created before the options were checked');
    });
  }
});

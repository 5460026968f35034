import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { defaultContextName, env, readLogin, readLoginFile, writeLogin } from './clientConfig.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-login-'));
const saved = env.WARREN_CONFIG;
after(() => {
  env.WARREN_CONFIG = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a damaged login file is a config error that says what to do, not an internal JSON error', () => {
  const file = path.join(dir, 'config.json');
  env.WARREN_CONFIG = file;
  const login = '{"hub": "https://h:8443", "token": "t", "caPin": "p", "caPem": "c"}';
  const damaged = ['{"hub": "https://h:8443", "tok', '', 'null', '{"hub": 1}', '[]', '{"contexts": []}', '{"contexts": {"a": {"hub": 1}}}',
    `{"contexts": {"a": ${login}, "b": {"hub": "https://h:8443"}}}`, `{"currentContext": "b", "contexts": {"a": ${login}}}`, `{"currentContext": 7, "contexts": {"a": ${login}}}`];
  for (const text of damaged) {
    fs.writeFileSync(file, text);
    assert.throws(readLogin, (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && e.message.includes(file) && /is damaged .*run `warren login` again/.test(e.message), JSON.stringify(text));
  }
  fs.rmSync(file);
  assert.equal(readLogin(), undefined);
});

test('a login file keeps only what `warren login` writes, and a context is only a saved one', () => {
  const file = path.join(dir, 'extra.json');
  env.WARREN_CONFIG = file;
  const lab = { hub: 'https://10.0.0.5:8443', token: 'at1.lab', caPin: `sha256:${'b'.repeat(64)}`, caPem: 'PEM-B' };
  fs.writeFileSync(file, JSON.stringify({ contexts: { lab: { ...lab, note: 'mine' } }, extra: true }));
  assert.deepEqual(readLoginFile(), { contexts: { lab } });
  assert.equal(readLogin(), undefined, 'no current context');
  assert.deepEqual(readLogin('lab'), lab);
  for (const name of ['toString', '__proto__', 'constructor']) {
    assert.throws(() => readLogin(name), (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && e.message.startsWith(`no context "${name}"`), name);
  }
});

test('a login file from before contexts is read as one context named after its hub, and kept at the next login', () => {
  const file = path.join(dir, 'old.json');
  env.WARREN_CONFIG = file;
  const old = { hub: 'https://hub.example.com:8443', token: 'at1.old', caPin: `sha256:${'a'.repeat(64)}`, caPem: 'PEM-A' };
  fs.writeFileSync(file, JSON.stringify(old));
  assert.deepEqual(readLoginFile(), { currentContext: 'hub.example.com:8443', contexts: { 'hub.example.com:8443': old } });
  assert.deepEqual(readLogin(), old);
  assert.deepEqual(readLogin('hub.example.com:8443'), old);
  assert.throws(() => readLogin('lab'), (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && /^no context "lab" in .* \(saved: hub\.example\.com:8443\); `warren login --context lab/.test(e.message));

  const lab = { ...old, hub: 'https://10.0.0.5:8443', token: 'at1.lab' };
  writeLogin(lab, 'lab');
  assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { currentContext: 'lab', contexts: { 'hub.example.com:8443': old, lab } });
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readLogin(), lab);
  assert.equal(defaultContextName('https://hub.example.com'), 'hub.example.com');
});

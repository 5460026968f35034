import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePrivateDir, writePrivateFile } from './privateFiles.js';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

test('makePrivateDir and writePrivateFile: owner-only under umask 0, wider files from before are narrowed', () => {
  const old = process.umask(0);
  try {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-private-')), 'data');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'old.crt'), 'x', { mode: 0o644 });
    makePrivateDir(dir);
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(path.join(dir, 'old.crt')), 0o600);
    writePrivateFile(path.join(dir, 'new.key'), 'secret');
    assert.equal(mode(path.join(dir, 'new.key')), 0o600);
    assert.equal(fs.readFileSync(path.join(dir, 'new.key'), 'utf8'), 'secret');
  } finally {
    process.umask(old);
  }
});

test('a data dir on a mount point the process does not own (a pod volume) is used, its files still 0600', { skip: process.getuid?.() !== 0 && 'needs root to run a child as another user' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-volume-'));
  fs.chmodSync(dir, 0o777);
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const script = `const m = await import(${JSON.stringify(path.join(root, 'src/shared/privateFiles.ts'))}); m.makePrivateDir(${JSON.stringify(dir)}); m.writePrivateFile(${JSON.stringify(path.join(dir, 'agent.key'))}, 'k');`;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(mode(path.join(dir, 'agent.key')), 0o600);
  assert.equal(fs.statSync(path.join(dir, 'agent.key')).uid, 65534);
});

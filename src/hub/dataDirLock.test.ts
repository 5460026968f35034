import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { lockDataDir } from './dataDirLock.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-lock-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a data dir locked by a live hub is refused with its pid; released, it can be taken again', () => {
  const data = path.join(dir, 'live');
  fs.mkdirSync(data);
  // Another live process holds it: the parent of this test (alive for as long as the test runs).
  fs.writeFileSync(path.join(data, 'hub.lock'), `${process.ppid}\n`);
  assert.throws(() => lockDataDir(data), (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && e.message.includes(`another hub (pid ${process.ppid}) is using the data dir ${data}`));
  fs.rmSync(path.join(data, 'hub.lock'));
  const release = lockDataDir(data);
  assert.equal(fs.readFileSync(path.join(data, 'hub.lock'), 'utf8'), `${process.pid}\n`);
  release();
  assert.equal(fs.existsSync(path.join(data, 'hub.lock')), false);
});

test('a stale lock (its process is gone, or it is our own pid) is taken over', () => {
  const data = path.join(dir, 'stale');
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  fs.mkdirSync(data);
  for (const holder of [gone, String(process.pid), 'garbage']) {
    fs.writeFileSync(path.join(data, 'hub.lock'), `${holder}\n`);
    lockDataDir(data)();
  }
});

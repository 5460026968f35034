import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';
import { env, readLogin } from './clientConfig.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-login-'));
const saved = env.WARREN_CONFIG;
after(() => {
  env.WARREN_CONFIG = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a damaged login file is a config error that says what to do, not an internal JSON error', () => {
  const file = path.join(dir, 'config.json');
  env.WARREN_CONFIG = file;
  for (const text of ['{"hub": "https://h:8443", "tok', '', 'null', '{"hub": 1}']) {
    fs.writeFileSync(file, text);
    assert.throws(readLogin, (e: WarrenError) => e.code === 'WARREN_E_CONFIG' && e.message.includes(file) && /is damaged .*run `warren login` again/.test(e.message), JSON.stringify(text));
  }
  fs.rmSync(file);
  assert.equal(readLogin(), undefined);
});

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../test/support/inProcess.js';
import { tempDir } from '../../test/support/warren.js';
import { silentLogger } from '../shared/log.js';
import { SqliteStore } from '../store/sqliteStore.js';
import { hubConfig } from './config.js';
import { startHub } from './hub.js';

test('a hub restarted on its address after a kill -9 replaces its predecessor at once: no live-looking row, no agent left "on" it', async () => {
  const dataDir = tempDir('mesh-restart');
  const port = await freePort();
  // What a SIGKILLed hub leaves in the store: its row with a lease still running, and where its agents were.
  const before = new SqliteStore(path.join(dataDir, 'warren.db'));
  await before.renewHub({ id: 'killed', relayUrl: `https://127.0.0.1:${port}`, startedAt: Date.now() - 60_000 }, 600_000);
  await before.setPresence('edge1', 'killed', Date.now() - 1_000);
  await before.close();

  const hub = await startHub(hubConfig({ listen: `127.0.0.1:${port}`, dataDir, drainTimeout: '100ms' }, {}), silentLogger);
  try {
    const hubs = await hub.store.listHubs();
    assert.deepEqual(hubs.map((h) => h.relayUrl), [`https://127.0.0.1:${port}`], 'only the new process is in the hub set');
    assert.notEqual(hubs[0]!.id, 'killed');
    assert.deepEqual(await hub.store.listPresence('edge1'), [], 'its agents are not taken for connected elsewhere');
  } finally {
    await hub.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

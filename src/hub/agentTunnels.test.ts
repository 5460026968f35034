/**
 * Agent tunnels in process: admission refuses a certificate this hub did not issue, and forget() (what
 * `warren agents rm` runs) drops a live tunnel so the agent stops for good.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { WarrenError } from '../shared/errors.js';
import { silentLogger } from '../shared/log.js';
import { createCa, createCsr, issueAgentCert, loadCa } from '../pki/pki.js';
import { agentConfig } from '../agent/config.js';
import { startAgent } from '../agent/agent.js';
import { inProcessHub } from '../../test/support/inProcess.js';
import { withDeadline } from '../../test/support/proc.js';
import { tempDir } from '../../test/support/warren.js';

const lab = await inProcessHub();
const revokedAgent = (err: unknown) => err instanceof WarrenError && err.code === 'WARREN_E_AGENT_REVOKED';

test('an agent certificate from another CA is refused at admission, and the agent stops for good', async (t) => {
  const foreignCa = await loadCa(await createCa('not the hub CA'));
  const { csrPem, keyPem } = await createCsr('intruder');
  const cert = await issueAgentCert(foreignCa, csrPem, 'intruder', 1);
  // The hub's own CA file, so the agent trusts the hub; only its own certificate is foreign.
  const dataDir = tempDir('agent-intruder');
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dataDir, 'identity.json'), JSON.stringify({ name: 'intruder', hubUrl: lab.hub.url, caPin: lab.hub.caPin }));
  fs.writeFileSync(path.join(dataDir, 'agent.key'), keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dataDir, 'agent.crt'), cert.certPem);
  fs.copyFileSync(lab.hub.caPath, path.join(dataDir, 'ca.crt'));
  const refusals = lab.hub.metrics.agentRefusals;
  const before = (await refusals.get()).values[0]?.value ?? 0;

  const agent = await startAgent(agentConfig({ name: 'intruder', dataDir, pingInterval: '1s' }, {}), silentLogger);
  t.after(() => agent.stop());
  await assert.rejects(withDeadline(agent.done, 10_000, 'the refused agent stopping'), revokedAgent);
  assert.equal(lab.hub.tunnels.get('intruder'), undefined);
  assert.equal((await refusals.get()).values[0]?.value, before + 1);
});

test('forget() drops the tunnel at once and the agent stops for good', async () => {
  const agent = await lab.agent('doomed');
  assert.ok(lab.hub.tunnels.get('doomed'));
  const gone = once(lab.hub.tunnels, 'disconnected');
  lab.hub.tunnels.forget('doomed');
  assert.deepEqual(await withDeadline(gone, 1_000, 'the hub dropping the tunnel of agent "doomed"'), ['doomed']);
  assert.equal(lab.hub.tunnels.get('doomed'), undefined);
  await assert.rejects(withDeadline(agent.done, 5_000, 'agent "doomed" stopping after its removal'), revokedAgent);
});

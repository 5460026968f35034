import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AGENT_NODE_FLAGS, AGENT_NODE_OPTIONS, NODE_FLAGS } from './nodeFlags.js';

const read = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');

test('this Node accepts the flags', () => {
  assert.equal(execFileSync(process.execPath, [...NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' }), 'ok');
});

test("the agent's flags: Node accepts them, and NODE_OPTIONS caps the shebang's young generation", () => {
  assert.equal(execFileSync(process.execPath, [...AGENT_NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' }), 'ok');
  // As the Kubernetes manifests run the agent: bin/warren.js's flags on the command line, the agent's in NODE_OPTIONS.
  const youngMiB = execFileSync(process.execPath, [...NODE_FLAGS, '-e', `
    const v8 = require('node:v8');
    let keep = [];
    for (let i = 0; i < 1e6; i++) { keep.push({ i }); if (keep.length > 1e4) keep = []; }
    process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20));
  `], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: AGENT_NODE_OPTIONS } });
  assert.ok(Number(youngMiB) <= 2, `young generation ${youngMiB} MiB`);
  assert.equal(read('bin/warren-agent.cjs').split('\n')[0], `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`, "bin/warren-agent.cjs runs with the agent's flags");
  const helm = read('deploy/helm/warren/templates/agent-statefulset.yaml');
  assert.ok(helm.includes(`{name: NODE_OPTIONS, value: "${AGENT_NODE_OPTIONS}"}`), 'the Helm chart sets the same NODE_OPTIONS');
});

test('bin/warren.js, the Dockerfile and npm start run node with the flags', () => {
  assert.equal(read('bin/warren.js').split('\n')[0], `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  assert.match(read('Dockerfile'), new RegExp(`^ENTRYPOINT ${JSON.stringify(['node', ...NODE_FLAGS, '/app/bin/warren.js']).replace(/[[\]]/g, '\\$&').replace(/,/g, ', ')}$`, 'm'));
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
  assert.ok(start.includes(`node ${NODE_FLAGS.join(' ')} bin/warren.js hub --demo`), start);
});

// The three ways to install Warren (docs/install.md), each run from a clean directory with no
// checkout in reach:
//   (a) the npm package: `npm pack`, `npm install -g` into a fresh prefix, then the installed `warren`
//       runs a hub and an agent that carry a stream;
//   (b) the single-file agent (`npm run dist`): copied alone into an empty directory, it joins a hub
//       and carries a stream, and serves a cluster through the Kubernetes client it carries compressed
//       (scripts/dist.mjs) — the kube-apiserver is test/support/kube/apiserver.ts's stand-in;
//   (c) the container image: the Dockerfile builds the tag the manifests name, and its build context
//       holds what the build copies and nothing it must not (no data dirs, no node_modules, no tokens);
//       its lint is in test/helm-chart.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import balenaDockerignore from '@balena/dockerignore';
import { assertCarriesAStream } from '../support/connectClient.js';
import { startFakeApiserver } from '../support/kube/apiserver.js';
import { ChildGroup, run, runOk } from '../support/proc.js';
import { startAgent, startHub, tempDir } from '../support/warren.js';
import { VERSION } from '../../src/shared/version.js';

// A CommonJS module whose types declare an ES default export: the function is the module itself.
const dockerignore = balenaDockerignore as unknown as typeof balenaDockerignore.default;
type Dockerignore = ReturnType<typeof dockerignore>;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('install', () => {
  const procs = new ChildGroup();
  after(() => procs.killAll());

  it('(a) npm pack → npm install -g into a fresh prefix: warren --version, a hub, an agent and warren-agent, no checkout', { timeout: 300_000 }, async (t) => {
    const dir = tempDir('npm');
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const prefix = path.join(dir, 'prefix');
    const started = performance.now();
    // The package as published: built files from `npm run build` (the test run builds first).
    const pack = await runOk('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, timeoutMs: 60_000 });
    const [{ filename, files }] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
    const packed = files.map((f) => f.path);
    assert.ok(packed.includes('bin/warren.js') && packed.includes('dist/cli/main.js'), `the package lacks the CLI: ${packed.slice(0, 20).join(' ')}`);
    assert.ok(!packed.some((f) => /^(src|test|node_modules|release)\//.test(f) || f.endsWith('.test.js')), `the package carries sources, tests or builds: ${packed.filter((f) => /^(src|test|release)\/|\.test\.js$/.test(f)).slice(0, 5).join(' ')}`);
    // better-sqlite3 fetches a prebuilt addon when it installs (prebuild-install); this machine has no
    // way out to GitHub, so it gets the one built for this checkout through prebuild-install's
    // documented local-prebuilds directory, as an offline install would (docs/install.md).
    const prebuilds = path.join(dir, 'prebuilds');
    fs.mkdirSync(prebuilds);
    const sqlite = path.join(ROOT, 'node_modules/better-sqlite3');
    const sqliteVersion = (JSON.parse(fs.readFileSync(path.join(sqlite, 'package.json'), 'utf8')) as { version: string }).version;
    await runOk('tar', ['-czf', path.join(prebuilds, `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`), '-C', sqlite, 'build/Release/better_sqlite3.node']);
    const env = { ...process.env, npm_config_better_sqlite3_local_prebuilds: prebuilds, npm_config_update_notifier: 'false' };
    const install = await run('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, filename)], { cwd: empty, env, timeoutMs: 240_000 });
    assert.equal(install.code, 0, `npm install -g failed:\n${install.stderr}`);
    t.diagnostic(`npm pack + npm install -g: ${Math.round(performance.now() - started)} ms`);

    const warren = path.join(prefix, 'bin/warren');
    const PATH = `${path.join(prefix, 'bin')}:${process.env.PATH ?? ''}`;
    const version = await runOk(warren, ['--version'], { cwd: empty, env: { ...process.env, PATH } });
    assert.equal(version.stdout.trim(), VERSION);
    const installed = path.join(prefix, 'lib/node_modules/warren');
    assert.ok(fs.realpathSync(warren).startsWith(fs.realpathSync(installed)), 'warren on PATH is not the installed package');

    const hub = await startHub({ group: procs, command: [warren, 'hub'], cwd: empty, env: { PATH } });
    await startAgent({ group: procs, hub, name: 'npm-node', command: [warren, 'agent'], cwd: empty, env: { PATH } });
    await assertCarriesAStream(procs, hub, 'npm-node');
    // `warren-agent`, the agent alone (what the unit of `warren agent install` runs), linked by npm too.
    const agentBin = path.join(prefix, 'bin/warren-agent');
    assert.ok(fs.realpathSync(agentBin).startsWith(fs.realpathSync(installed)), 'warren-agent on PATH is not the installed package');
    assert.equal((await runOk(agentBin, ['--version'], { cwd: empty, env: { ...process.env, PATH } })).stdout.trim(), VERSION);
    await startAgent({ group: procs, hub, name: 'npm-agent-only', command: [agentBin], cwd: empty, env: { PATH } });
    await assertCarriesAStream(procs, hub, 'npm-agent-only');
    assert.deepEqual(fs.readdirSync(empty), [], 'the installed warren wrote into its working directory');
  });

  it('(b) npm run dist: the single-file agent, alone in an empty directory, joins, carries a stream and serves a cluster', { timeout: 180_000 }, async (t) => {
    const started = performance.now();
    const dist = await run('npm', ['run', 'dist'], { cwd: ROOT, timeoutMs: 150_000 });
    assert.equal(dist.code, 0, `npm run dist failed:\n${dist.stderr}${dist.stdout}`);
    t.diagnostic(`npm run dist: ${Math.round(performance.now() - started)} ms; ${dist.stdout.trim().split('\n').at(-1) ?? ''}`);

    const empty = tempDir('single-file');
    const exe = path.join(empty, 'warren-agent');
    fs.copyFileSync(path.join(ROOT, 'release/warren-agent'), exe);
    fs.chmodSync(exe, 0o755);
    // No Node on PATH and nothing beside it: the executable is all there is.
    const env = { PATH: '/usr/bin:/bin', HOME: empty };
    const version = await runOk(exe, ['--version'], { cwd: empty, env });
    assert.equal(version.stdout.trim(), VERSION);
    const usage = await run(exe, ['--no-such-flag'], { cwd: empty, env });
    assert.equal(usage.code, 2, usage.stderr);

    const hub = await startHub({ group: procs });
    await startAgent({ group: procs, hub, name: 'single', command: [exe], cwd: empty, dataDir: path.join(empty, 'data'), env });
    await assertCarriesAStream(procs, hub, 'single');
    assert.deepEqual(fs.readdirSync(empty).sort(), ['data', 'warren-agent']);

    // The Kubernetes client is compiled only when an agent serves a cluster: this one does.
    const api = await startFakeApiserver();
    try {
      const kubeconfig = path.join(tempDir('single-kube'), 'kubeconfig');
      fs.writeFileSync(kubeconfig, api.kubeconfig('agent'), { mode: 0o600 });
      await startAgent({ group: procs, hub, name: 'single-kube', command: [exe], cwd: empty, dataDir: path.join(empty, 'data-kube'), env, args: ['--kube', kubeconfig, '--cluster', 'edge'] });
      const r = await runOk('curl', ['-sS', '--max-time', '20', '--cacert', hub.caPath, '-H', `Authorization: Bearer ${hub.adminToken}`, '-w', '\n%{http_code}', `${hub.url}/k8s/clusters/edge/version`], { timeoutMs: 30_000 });
      const [body, status] = [r.stdout.slice(0, r.stdout.lastIndexOf('\n')), r.stdout.slice(r.stdout.lastIndexOf('\n') + 1)];
      assert.equal(status, '200', body);
      assert.match((JSON.parse(body) as { gitVersion: string }).gitVersion, /^v1\./, body);
      const seen = api.requests.find((q) => q.path === '/version');
      assert.equal(seen?.authenticatedUser, 'system:serviceaccount:warren-system:warren-agent', 'the agent authenticated with its kubeconfig\'s token');
      assert.equal(seen?.impersonatedUser, 'admin');
    } finally {
      await api.close();
    }
  });

  it('(c) the image: the Dockerfile builds the image the manifests name, from a context of what it copies and no secrets', { timeout: 60_000 }, async () => {
    // The Dockerfile's lint and structure: test/helm-chart.test.ts (describe 'Dockerfile').
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    // The image the manifests and the chart name by default is the one these commands build.
    assert.match(dockerfile, new RegExp(`docker build -t ghcr\\.io/warren/warren:${VERSION.replace(/\./g, '\\.')} \\.`));
    assert.match(dockerfile, /^USER 10001:10001$/m);
    assert.match(dockerfile, /mkdir -p \/var\/lib\/warren/, 'the hub\'s data dir in the chart');

    // The context `docker build .` sends: the checkout's files (and leftovers a person's checkout may
    // hold) filtered by .dockerignore with Docker's own matching rules.
    const leftovers = ['warren-data/admin.token', 'warren-data/ca.key', 'warren-agent/agent.key', 'join-token', 'hub.log', '.git/config', 'node_modules/zod/package.json', 'dist/cli/main.js', 'release/warren-agent'];
    const ignore = dockerignore({ ignorecase: false }).add(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n'));
    const context = ignore.filter([...checkoutFiles(ROOT, ignore), ...leftovers]);
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build-ui.mjs', 'scripts/build-agent.mjs', 'bin/warren.js', 'src/cli/main.ts', 'src/hub/hub.ts']) {
      assert.ok(context.includes(needed), `the build context lacks ${needed}, which the Dockerfile copies`);
    }
    const copied = /^(package(-lock)?\.json|tsconfig(\.build)?\.json|scripts\/build-(ui|agent)\.mjs|bin\/[^/]+|src\/.+)$/;
    assert.deepEqual(context.filter((f) => !copied.test(f)), [], 'the build context holds files the Dockerfile does not copy');
    assert.deepEqual(context.filter((f) => f.endsWith('.test.ts')), [], 'tests in the build context');
  });
});

/** Files under `root` (relative, `/`-separated), not descending into what `ignore` leaves out entirely. */
function checkoutFiles(root: string, ignore: Dockerignore, dir = ''): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory()) return ignore.ignores(`${rel}/`) ? [] : checkoutFiles(root, ignore, rel);
    return [rel];
  });
}

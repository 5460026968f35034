/** `warren hub`: run the hub; with --demo also a local demo agent, and print what to do next. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { HubFlags } from '../../hub/config.js';
import type { Hub } from '../../hub/hub.js';
import { sendHubReady } from '../readySignal.js';
import { deferOptions } from '../conventions.js';

export function registerHub(program: Command): void {
  const command = program.command('hub').description('Run the hub: the one HTTPS port agents dial out to and people connect through.');
  deferOptions(command, async () => (await import('../../hub/config.js')).hubOptions)
    .addHelpText(
      'after',
      `
Examples:
  warren hub --demo                                   # hub on :8443 plus a local demo agent
  warren hub --listen 0.0.0.0:8443 --public-url https://hub.example.com:8443
  warren hub --listen 127.0.0.1:0 --data-dir /tmp/w   # free port; the bound address is logged
  warren hub --socks-listen 0.0.0.0:1080              # SOCKS5 door: curl --socks5-hostname :TOKEN@hub:1080 …
  warren hub --connect-uds /run/warren/connect.sock   # CONNECT for co-located clients; grant group warren:uds
  warren hub --jwt-public-key issuer.pem --jwt-issuer https://sso.example.com --jwt-doors kube,connect
                                                      # then: warren grant --group jwt:ops --cluster prod
  warren hub --config /etc/warren/hub.yaml --log-level debug   # options from a file; flags win

A config file holds the same options, keyed by the flag names without --:
  listen: 0.0.0.0:8443
  public-url: https://hub.example.com:8443
  tls-san: [hub.example.com, 10.0.0.5]
  max-handshakes: 128
  jwt-public-key: /etc/warren/issuer.pem`,
    )
    .action(async (flags: HubFlags) => {
      // Loaded here, not at start-up: every `warren` process would otherwise carry the hub's store
      // drivers, kube router and UI in its memory, and load its config schema at every start.
      const [{ hubConfig }, { createLogger }, { startHub }] = await Promise.all([import('../../hub/config.js'), import('../../shared/log.js'), import('../../hub/hub.js')]);
      const config = hubConfig(flags);
      const log = await createLogger('hub', config.logLevel, config.logFormat);
      const hub = await startHub(config, log);
      const stopDemo = config.demo ? await startDemoAgent(hub, config.dataDir) : undefined;
      printNextSteps(hub, config.demo);
      sendHubReady(hub);
      await new Promise<void>((resolve) => {
        const stop = (signal: string, delayMs: number) => {
          log.info({ signal }, 'draining');
          void (async () => {
            await stopDemo?.();
            await hub.close({ delayMs });
            resolve();
          })();
        };
        // SIGTERM (a rollout, systemctl stop) waits out --shutdown-delay first; Ctrl-C does not.
        process.once('SIGTERM', () => stop('SIGTERM', config.shutdownDelayMs));
        process.once('SIGINT', () => stop('SIGINT', 0));
      });
    });
}

async function startDemoAgent(hub: Hub, dataDir: string): Promise<() => Promise<void>> {
  const [{ agentConfig }, { startAgent }, { createLogger }] = await Promise.all([import('../../agent/config.js'), import('../../agent/agent.js'), import('../../shared/log.js')]);
  const agentDir = path.join(dataDir, 'demo-agent');
  let token: string | undefined;
  if (!fs.existsSync(path.join(agentDir, 'identity.json'))) {
    token = (await hub.enrollment.createJoinToken({ ttlMs: 600_000, uses: 1, labels: { demo: 'true' }, authority: { name: 'demo', clusters: [], routes: [] }, createdBy: 'hub --demo' })).token;
  }
  const local = `https://127.0.0.1:${hub.address.port}`;
  const agent = await startAgent(agentConfig({ token, name: 'demo', dataDir: agentDir, hub: local, labels: 'demo=true' }), await createLogger('agent', 'warn'));
  return () => agent.stop();
}

function printNextSteps(hub: Hub, demo: boolean): void {
  const lines = [
    '',
    `Warren hub is up at ${hub.url}`,
    `  CA pin:      ${hub.caPin}`,
    `  CA file:     ${hub.caPath}`,
    `  admin token: ${hub.adminTokenPath} (keep it secret)`,
    '',
    'Next:',
    `  1. Log in as admin:   npx warren login --hub ${hub.url} --token "$(cat ${hub.adminTokenPath})" --ca-fingerprint ${hub.caPin}`,
    '  2. Join an agent:     npx warren join-token create --ttl 1h      # then run the printed `WARREN_JOIN_TOKEN=… warren agent` on the node',
    '  3. Reach a node:      ssh -o ProxyCommand="npx warren connect %h:%p" root@NODE',
  ];
  if (demo) {
    lines.push(
      '',
      'Demo agent "demo" is connected and can reach this host:',
      `  npx warren agents ls`,
      `  curl -p -x ${hub.url} --proxy-cacert ${hub.caPath} --proxy-header "Proxy-Authorization: Bearer $(cat ${hub.adminTokenPath})" http://demo.warren:PORT/`,
    );
  }
  process.stderr.write(lines.join('\n') + '\n\n');
}

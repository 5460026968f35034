/** `warren hub`: run the hub; with --demo also a local demo agent, and print what to do next. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { hubConfig, hubDefaults } from '../../hub/config.js';
import { startHub, type Hub } from '../../hub/hub.js';
import { createLogger } from '../../log.js';
import { sendHubReady } from '../readySignal.js';
import { agentConfig } from '../../agent/config.js';
import { startAgent } from '../../agent/agent.js';
import { collect } from '../flags.js';

export function registerHub(program: Command): void {
  program
    .command('hub')
    .description('Run the hub: the one HTTPS port agents dial out to and people connect through.')
    .option('--listen <addr>', 'HOST:PORT for agents, the API and HTTP CONNECT (port 0: a free port)', hubDefaults.listen)
    .option('--data-dir <dir>', 'CA, serving certificate, admin token and SQLite store', hubDefaults.dataDir)
    .option('--public-url <url>', 'the https:// URL agents and clients use (default: this host and the bound port)')
    .option('--store <url>', 'sqlite:PATH (default: DATA_DIR/warren.db)')
    .option('--tls-cert <file>', 'serve this certificate instead of the generated one (with --tls-key)')
    .option('--tls-key <file>', 'key for --tls-cert')
    .option('--tls-san <name>', 'extra DNS name or IP for the generated certificate (repeatable)', collect, [])
    .option('--ping-interval <d>', 'keepalive interval; a silent agent is dropped after two', hubDefaults.pingInterval)
    .option('--agent-cert-ttl <d>', 'lifetime of agent certificates (renewed at 2/3)', hubDefaults.agentCertTtl)
    .option('--max-user-cert-ttl <d>', 'longest lifetime `warren user-cert create --ttl` may ask for (user certificates cannot be revoked)', hubDefaults.maxUserCertTtl)
    .option('--dial-timeout <d>', 'how long an agent may take to reach a target', hubDefaults.dialTimeout)
    .option('--header-timeout <d>', 'how long a client may take to complete TLS and send request headers', hubDefaults.headerTimeout)
    .option('--drain-timeout <d>', 'on SIGTERM, how long open streams may finish', hubDefaults.drainTimeout)
    .option('--max-streams-per-principal <n>', 'streams one user, token or forward may hold open at once, every door together (0: no limit)', hubDefaults.maxStreamsPerPrincipal)
    .option('--max-new-streams-per-second <n>', 'new streams one principal may open per second, with a burst of as many (0: no limit)', hubDefaults.maxNewStreamsPerSecond)
    .option('--max-streams-per-agent <n>', "streams open through one agent at once, shared fairly between principals (below the tunnel's 4096)", hubDefaults.maxStreamsPerAgent)
    .option('--max-handshakes <n>', 'TLS handshakes in progress at once; more connections wait their turn (raise it for many far-away agents)', hubDefaults.maxHandshakes)
    .option('--max-pending-per-source <n>', 'connections one address may hold before authenticating (TLS handshake, SOCKS5 greeting); more are closed at once (agents behind one NAT address count together)', hubDefaults.maxPendingPerSource)
    .option('--client-hello-timeout <d>', 'a connection that sends no byte of its TLS ClientHello by then is closed', hubDefaults.clientHelloTimeout)
    .option('--log-level <level>', 'trace|debug|info|warn|error (env WARREN_LOG_LEVEL)')
    .option('--demo', 'also run a local demo agent named "demo" that can reach this host')
    .option('--socks-listen <addr>', 'also serve SOCKS5 (RFC 1928/1929, password = access token) on HOST:PORT (port 0: a free port)')
    .option('--jwt-public-key <file>', 'trust JWTs signed by this key (PEM public key or certificate; RSA → RS256, EC P-256 → ES256), e.g. multikube tokens routed by their ctx claim; their users and groups are jwt:NAME')
    .option('--jwt-max-ttl <d>', `longest external JWT accepted, exp − iat (exp − now without iat) (default ${hubDefaults.jwtMaxTtl})`)
    .option('--jwt-issuer <iss>', 'accept only external JWTs whose iss claim is this')
    .option('--jwt-audience <aud>', 'accept only external JWTs whose aud claim names this')
    .option('--jwt-trust-names', 'take external sub and groups as hub user and group names instead of jwt:NAME (warren: groups are always dropped)')
    .option('--jwt-doors <list>', `doors where external JWTs are accepted: comma list of kube, connect, socks5, api (default ${hubDefaults.jwtDoors})`)
    .option('--connect-uds <path>', 'also serve plain HTTP CONNECT on this unix socket (mode 0660; callers are user "uds", group warren:uds)')
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
                                                      # then: warren grant --group jwt:ops --cluster prod`,
    )
    .action(async (o: Record<string, unknown>) => {
      const config = hubConfig({
        listen: o.listen as string, dataDir: o.dataDir as string, publicUrl: o.publicUrl as string | undefined, store: o.store as string | undefined,
        tlsCert: o.tlsCert as string | undefined, tlsKey: o.tlsKey as string | undefined, tlsSan: o.tlsSan as string[],
        pingInterval: o.pingInterval as string, agentCertTtl: o.agentCertTtl as string, maxUserCertTtl: o.maxUserCertTtl as string, dialTimeout: o.dialTimeout as string,
        headerTimeout: o.headerTimeout as string, drainTimeout: o.drainTimeout as string, maxHandshakes: o.maxHandshakes as string,
        maxPendingPerSource: o.maxPendingPerSource as string, clientHelloTimeout: o.clientHelloTimeout as string,
        maxStreamsPerPrincipal: o.maxStreamsPerPrincipal as string, maxNewStreamsPerSecond: o.maxNewStreamsPerSecond as string, maxStreamsPerAgent: o.maxStreamsPerAgent as string, logLevel: o.logLevel as 'info' | undefined, demo: Boolean(o.demo),
        socksListen: o.socksListen as string | undefined, connectUds: o.connectUds as string | undefined,
        jwtPublicKey: o.jwtPublicKey as string | undefined, jwtMaxTtl: o.jwtMaxTtl as string | undefined, jwtIssuer: o.jwtIssuer as string | undefined,
        jwtAudience: o.jwtAudience as string | undefined, jwtTrustNames: o.jwtTrustNames as boolean | undefined, jwtDoors: o.jwtDoors as string | undefined,
      });
      const log = createLogger('hub', config.logLevel);
      const hub = await startHub(config, log);
      const stopDemo = config.demo ? await startDemoAgent(hub, config.dataDir) : undefined;
      printNextSteps(hub, config.demo);
      sendHubReady(hub);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'draining');
          void (async () => {
            await stopDemo?.();
            await hub.close();
            resolve();
          })();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}

async function startDemoAgent(hub: Hub, dataDir: string): Promise<() => Promise<void>> {
  const agentDir = path.join(dataDir, 'demo-agent');
  let token: string | undefined;
  if (!fs.existsSync(path.join(agentDir, 'identity.json'))) {
    token = (await hub.enrollment.createJoinToken({ ttlMs: 600_000, uses: 1, labels: { demo: 'true' }, authority: { name: 'demo', clusters: [], routes: [] }, createdBy: 'hub --demo' })).token;
  }
  const local = `https://127.0.0.1:${hub.address.port}`;
  const agent = await startAgent(agentConfig({ token, name: 'demo', dataDir: agentDir, hub: local, labels: 'demo=true' }), createLogger('agent', 'warn'));
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

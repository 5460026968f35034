/**
 * The explicit "ready" message for a parent that spawned this process with an IPC channel (tests and
 * benchmarks): one `{ ready: … }` message, so readiness never depends on the log format. Without a
 * channel nothing is sent: no flag and no environment variable turn it on.
 */
import { formatHostPort } from '../shared/hostPort.js';
import type { Hub } from '../hub/hub.js';
import type { AgentConfig } from '../agent/config.js';
import type { Agent } from '../agent/agent.js';

function sendReady(ready: Record<string, unknown>): void {
  if (!process.send || !process.connected) return;
  // A parent that went away meanwhile must not turn the send's error into an unhandled 'error' event.
  process.send({ ready }, undefined, {}, () => undefined);
}

/** `{ ready: { url, listen, caPin, socks? } }` (and `extra`), to be called once every door listens. */
export function sendHubReady(hub: Hub, extra: Record<string, unknown> = {}): void {
  const socks = hub.socksAddress;
  sendReady({
    ...extra,
    url: hub.url, listen: formatHostPort({ host: hub.address.address, port: hub.address.port }), caPin: hub.caPin,
    ...(socks ? { socks: formatHostPort({ host: socks.address, port: socks.port }) } : {}),
  });
}

/** `{ ready: { name, hub } }` when the agent's tunnel is first up; `hub` is the URL it dials. */
export function sendAgentReadyWhenUp(agent: Agent, config: AgentConfig): void {
  agent.once('connected', () => sendReady({ name: agent.name, hub: config.hub ?? agent.hubUrl.href }));
}

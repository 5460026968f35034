/** Prometheus metrics for /metrics (prom-client), one registry per hub. */
import client from 'prom-client';
import type { Store } from '../store/store.js';

export class HubMetrics {
  readonly registry = new client.Registry();
  readonly agentsConnected = new client.Gauge({ name: 'warren_agents_connected', help: 'Agents with an open tunnel', registers: [this.registry] });
  readonly streamsOpen = new client.Gauge({ name: 'warren_streams_open', help: 'Streams currently relayed', labelNames: ['door'], registers: [this.registry] });
  readonly dials = new client.Counter({ name: 'warren_dials_total', help: 'Stream open attempts by result code', labelNames: ['door', 'result'], registers: [this.registry] });
  readonly dialSeconds = new client.Histogram({
    name: 'warren_dial_duration_seconds', help: 'Time to open a stream through an agent', labelNames: ['door'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly bytes = new client.Counter({ name: 'warren_stream_bytes_total', help: 'Bytes relayed', labelNames: ['door', 'direction'], registers: [this.registry] });
  readonly authFailures = new client.Counter({ name: 'warren_auth_failures_total', help: 'Rejected credentials', labelNames: ['door'], registers: [this.registry] });
  readonly quotaRefusals = new client.Counter({ name: 'warren_quota_refusals_total', help: 'Streams refused by a quota', labelNames: ['door', 'quota'], registers: [this.registry] });
  readonly revocations = new client.Counter({ name: 'warren_streams_revoked_total', help: 'Open streams and kube requests closed because their access was revoked', labelNames: ['door'], registers: [this.registry] });
  readonly agentConnects = new client.Counter({ name: 'warren_agent_connects_total', help: 'Agent tunnel (re)connections', registers: [this.registry] });
  readonly agentRefusals = new client.Counter({ name: 'warren_agent_refusals_total', help: 'Agent tunnels refused', registers: [this.registry] });
  readonly storeQueries = new client.Counter({ name: 'warren_store_queries_total', help: 'Calls into the store (SQLite or PostgreSQL) by method', labelNames: ['op'], registers: [this.registry] });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'warren_hub_' });
  }
}

/** Store methods that are not queries: they are not counted. */
const NOT_QUERIES: ReadonlySet<PropertyKey> = new Set(['listen', 'close']);

/** `store` with every query counted in `warren_store_queries_total{op}` (what reaches the database). */
export function countStoreCalls(store: Store, metrics: HubMetrics): Store {
  // A Proxy rather than a class that repeats the Store interface: every method is counted alike. Each
  // method's counting wrapper is made once (a store call is made on every stream and kube request).
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get: (target, prop) => {
      if (wrapped.has(prop)) return wrapped.get(prop);
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      let fn = method;
      if (typeof prop === 'string' && !NOT_QUERIES.has(prop)) {
        const calls = metrics.storeQueries.labels({ op: prop });
        fn = (...args: unknown[]) => (calls.inc(), method(...args));
      }
      wrapped.set(prop, fn);
      return fn;
    },
  });
}

/**
 * V8 flags Warren's processes start with: bin/warren.js's shebang and the Dockerfile's ENTRYPOINT pass
 * these (src/shared/nodeFlags.test.ts keeps them equal); an agent run as a service has its own,
 * AGENT_NODE_FLAGS below.
 *
 * A 16 MiB young generation from the start. With V8's default (1 MiB, grown on demand) a process that
 * relays bytes falls, in some runs, into a mode with one mark-compact every ~32 MB relayed, which costs
 * about 1 CPU second per GiB and a third of the throughput; started with this flag it never did in the
 * runs measured, for ~16 MiB more RSS (docs/benchmarks.md, finding 2).
 *
 * The old generation may grow to 4× what survived the last mark-compact before the next one starts (a
 * fixed factor; V8's own drops as low as ~2.3 after a quiet spell). External memory (received chunks)
 * counts against that limit, so with a small heap and V8's factor a process that relays after being
 * idle ran a mark-compact every ~100 ms: ~2 CPU s per GiB more and a third less throughput (finding 8).
 */
export const NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--heap-growing-percent=300'];

/**
 * The agent's own flags, where it runs as a service: the systemd unit of `warren agent install` passes
 * these instead of NODE_FLAGS (and bin/warren-agent.cjs's shebang has them); the Kubernetes manifests (`warren agent manifest`, the Helm chart), which
 * run `warren agent` through bin/warren.js's shebang, set AGENT_NODE_OPTIONS in NODE_OPTIONS, which
 * caps the young generation below the shebang's 16 MiB minimum (V8 clamps the minimum to the maximum).
 *
 * An agent idles most of its life, on every node of a fleet, and V8 keeps a young generation it has once
 * grown: with a 1 MiB semi-space instead of 16 MiB an agent that has relayed 1 GiB holds ~101 MiB RSS
 * instead of ~138 (still a minute later), and 65–70 MiB instead of 78–104 right after it connected, for
 * the same agent CPU per GiB and no more mark-compacts in the A/B measured (docs/benchmarks.md,
 * finding 10). The fixed heap growing factor stays: it is what keeps a process that relays after an idle
 * spell out of the mark-compact mode (finding 8). `--lite-mode` saves ~8 MiB more but costs ~50 % more
 * agent CPU per GiB relayed; not used.
 */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=1';
export const AGENT_NODE_FLAGS: readonly string[] = [AGENT_NODE_OPTIONS, '--heap-growing-percent=300'];

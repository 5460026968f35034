/**
 * V8 flags Warren's processes start with: bin/warren.js's shebang, the Dockerfile's ENTRYPOINT and the
 * systemd unit of `warren agent install` all pass these (src/shared/nodeFlags.test.ts keeps them equal).
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

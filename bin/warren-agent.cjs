#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=300
// CommonJS, so that nothing loads Node's ES module loader: an idle agent holds ~10 MiB less than
// through an ES module entry (docs/benchmarks.md, finding 10). dist/warren-agent.cjs is the agent's
// bundle, made by `npm run build` (scripts/build-agent.mjs).
require('../dist/warren-agent.cjs');

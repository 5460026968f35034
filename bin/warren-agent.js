#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=300
import '../dist/cli/agentMain.js';

#!/usr/bin/env -S node --min-semi-space-size=16 --heap-growing-percent=300
import '../dist/cli/main.js';

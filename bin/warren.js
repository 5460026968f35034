#!/usr/bin/env -S node --min-semi-space-size=16
import '../dist/cli/main.js';

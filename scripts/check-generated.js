#!/usr/bin/env node
// Fails when the generated binding (js/binding.js, js/binding.d.ts) differs
// from what is committed: `npm run build` regenerates it, and a change to a
// #[napi] item must be committed together with its regenerated typings.

'use strict';

const { execFileSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const files = ['js/binding.js', 'js/binding.d.ts'];
try {
  execFileSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: root, stdio: 'ignore' });
} catch {
  process.exit(0); // not a checkout (an installed package): nothing to compare
}
try {
  execFileSync('git', ['diff', '--exit-code', '--', ...files], { cwd: root, stdio: 'inherit' });
} catch {
  console.error(`generated files are stale: commit the output of 'npm run build' (${files.join(', ')})`);
  process.exit(1);
}

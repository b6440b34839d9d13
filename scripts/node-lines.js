#!/usr/bin/env node
// Runs the JavaScript test suite again on each Node line given (default:
// the LTS lines 22 and 24) with the addon already built: Node-API keeps one
// binary good for all of them. CI runs it after `npm test` on Node 20.

'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { nodeBinary } = require('./node-binary');

const root = path.join(__dirname, '..');
const majors = process.argv.slice(2).map(Number);
let failed = false;
for (const major of majors.length ? majors : [22, 24]) {
  const { node, why } = nodeBinary(major);
  if (!node) {
    console.error(`node-lines: cannot run the suite on Node ${major}: ${why}`);
    failed = true;
    continue;
  }
  const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}` };
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  // What npm will run the suite with: the binary first on PATH, checked.
  const onPath = spawnSync('node', ['--version'], { encoding: 'utf8', env }).stdout?.trim();
  if (onPath !== version || !version.startsWith(`v${major}.`)) {
    console.error(`node-lines: expected Node ${major} first on PATH, found ${onPath} (binary ${version})`);
    failed = true;
    continue;
  }
  console.log(`\nnode-lines: the test suite on Node ${version}`);
  const r = spawnSync('npm', ['run', 'test:js'], { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`node-lines: the suite failed on Node ${version}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);

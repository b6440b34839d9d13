#!/usr/bin/env node
// Builds the native addon from source when no binary is present: the case
// of a project that installs this package from the registry or a tarball.
// Needs a Rust toolchain (cargo) on the PATH. A repository checkout builds
// through `npm run build` (the prepare script) instead, which also
// regenerates the binding's loader and typings.

'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { binaryName } = require(path.join(root, 'package.json')).napi;

function platformSuffix() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function libraryFile(targetDir) {
  const crate = binaryName.replace(/-/g, '_');
  const name =
    process.platform === 'win32' ? `${crate}.dll` : process.platform === 'darwin' ? `lib${crate}.dylib` : `lib${crate}.so`;
  return path.join(targetDir, 'release', name);
}

const binary = path.join(root, 'js', `${binaryName}.${platformSuffix()}.node`);
if (fs.existsSync(binary)) process.exit(0);

const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
console.log(`@bootifyjs/native-events: building the native addon with cargo (target dir ${targetDir})`);
try {
  execFileSync('cargo', ['build', '--release', '--lib', '--locked'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  });
} catch (err) {
  console.error('@bootifyjs/native-events: the native build failed; a Rust toolchain (cargo) is required.');
  process.exit(1);
}
fs.copyFileSync(libraryFile(targetDir), binary);

#!/usr/bin/env node
// Install step of a project that depends on this package. A prebuilt
// binary (the `@bootifyjs/native-events-<platform>` optional dependency,
// which npm installs only on its own platform) needs nothing done, so
// package managers that skip install scripts still get a working package.
// Only when no binary fits do we build from source, which needs cargo. A
// repository checkout builds through `npm run build` (the prepare script)
// instead, which also regenerates the binding's loader and typings.

'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const manifest = require(path.join(root, 'package.json'));
const { binaryName } = manifest.napi;

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

/** The prebuilt package's directory when npm installed it, else null. */
function prebuiltPackage(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [root] }));
  } catch {
    return null;
  }
}

/**
 * Why `file` cannot serve this package, or null when it can: it must
 * load here (a binary built against a newer glibc does not) and come from
 * this very version (the JavaScript and native halves share a memory
 * layout). Loaded in a child process, so a crash cannot take this one.
 */
function unusable(file, version) {
  if (version !== undefined && version !== manifest.version) return `it is version ${version}, this package ${manifest.version}`;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return null;
  const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').find((l) => /Error/.test(l));
  return `it does not load here (${why ?? 'unknown error'})`;
}

function fail(lines) {
  console.error(lines.map((l) => `@bootifyjs/native-events: ${l}`).join('\n'));
  process.exit(1);
}

const suffix = platformSuffix();
const fileName = `${binaryName}.${suffix}.node`;
const binary = path.join(root, 'js', fileName);
const prebuiltName = `${manifest.name}-${suffix}`;
const prebuilt = prebuiltPackage(prebuiltName);
if (fs.existsSync(binary)) process.exit(0);
let rejected = null;
if (prebuilt && fs.existsSync(path.join(prebuilt, fileName))) {
  const version = JSON.parse(fs.readFileSync(path.join(prebuilt, 'package.json'), 'utf8')).version;
  rejected = unusable(path.join(prebuilt, fileName), version);
  if (rejected === null) process.exit(0);
}

const offered = Object.keys(manifest.optionalDependencies ?? {}).includes(prebuiltName);
const lookedFor = [
  rejected
    ? `the prebuilt binary in ${prebuiltName} cannot be used: ${rejected},`
    : offered
      ? `no prebuilt binary was installed for ${suffix} (looked for the package ${prebuiltName}: an install with --no-optional or --omit=optional skips it, as does a lockfile made on another platform)`
      : `no prebuilt binary is published for ${suffix} (prebuilt: ${Object.keys(manifest.optionalDependencies ?? {}).join(', ') || 'none'})`,
  `and none was built at ${binary}.`,
];
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
console.log(`@bootifyjs/native-events: ${lookedFor.join(' ')} Building from source with cargo (target dir ${targetDir}).`);
try {
  execFileSync('cargo', ['build', '--release', '--lib', '--locked'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR: targetDir },
  });
} catch (err) {
  const missing = err && err.code === 'ENOENT';
  fail([
    ...lookedFor,
    missing ? 'Building from source needs a Rust toolchain, and cargo is not on the PATH.' : 'The build from source failed (its output is above).',
    'To fix it: install Rust (https://rustup.rs, 1.89 or newer) and reinstall, or install on a platform with a prebuilt binary.',
  ]);
}
fs.copyFileSync(libraryFile(targetDir), binary);

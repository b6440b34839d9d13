// The user story end to end: pack this package, install the tarball into a
// separate TypeScript project, compile that project and run its
// integration test. Three ways an install goes: with the prebuilt
// platform package (scripts ignored, no cargo anywhere), from source (no
// prebuilt package), and neither (a clear failure).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..');
const fixture = path.join(root, '__test__', 'fixtures', 'project');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  napi: { binaryName: string; targets: string[] };
};
const platform = 'linux-x64-gnu';
const prebuiltName = `${manifest.name}-${platform}`;
const binaryFile = `${manifest.napi.binaryName}.${platform}.node`;
const npmCli = process.env.npm_execpath && existsSync(process.env.npm_execpath) ? process.env.npm_execpath : null;

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  // Through node itself, so a PATH stripped of cargo still finds npm.
  const [cmd, argv] = npmCli ? [process.execPath, [npmCli, ...args]] : ['npm', args];
  return spawnSync(cmd, argv, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = npm(args, cwd, env);
  if (r.status !== 0) assert.fail(`npm ${args.join(' ')} failed in ${cwd}:\n${r.stdout}\n${r.stderr ?? r.error?.message}`);
  return r.stdout;
}

function pack(dir: string, into: string, extra: string[] = []): string {
  const packed = JSON.parse(run(['pack', '--json', '--pack-destination', into, ...extra], dir)) as { filename: string }[];
  return path.join(into, packed[0].filename);
}

/** The platform packages (`npm/<platform>/package.json`). */
function platformPackages(): { dir: string; name: string; version: string; main: string }[] {
  return readdirSync(path.join(root, 'npm')).map((dir) => ({ dir, ...JSON.parse(readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8')) }));
}

/**
 * The main package as the release publishes it: `napi pre-publish` lists
 * every platform package in its optionalDependencies (the repository's
 * manifest does not, or `npm ci` would look for unpublished packages).
 */
function packPublished(into: string): string {
  const plain = pack(root, into);
  const stage = path.join(into, 'stage');
  mkdirSync(stage);
  const untar = spawnSync('tar', ['xzf', plain, '-C', stage]);
  assert.equal(untar.status, 0, String(untar.stderr));
  rmSync(plain);
  const dir = path.join(stage, 'package');
  const m = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  m.optionalDependencies = Object.fromEntries(platformPackages().map((p) => [p.name, manifest.version]));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(m, null, 2));
  return pack(dir, into, ['--ignore-scripts']);
}

/** The platform package as the release publishes it: its manifest (at `version`) plus the binary. */
function packPrebuilt(into: string, version?: string): string {
  const dir = path.join(into, `prebuilt-${version ?? 'same'}`);
  cpSync(path.join(root, 'npm', platform), dir, { recursive: true });
  cpSync(path.join(root, 'js', binaryFile), path.join(dir, binaryFile));
  if (version !== undefined) {
    const m = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...m, version }));
  }
  return pack(dir, into);
}

test('there is a platform package at this version for every release target', () => {
  const packages = platformPackages();
  assert.equal(packages.length, manifest.napi.targets.length);
  for (const m of packages) {
    assert.equal(m.name, `${manifest.name}-${m.dir}`);
    assert.equal(m.version, manifest.version, m.name);
    assert.equal(m.main, `${manifest.napi.binaryName}.${m.dir}.node`);
  }
  assert.ok(packages.some((p) => p.name === prebuiltName), 'the platform CI tests is prebuilt');
});

function makeApp(into: string, tarballs: Record<string, string>): string {
  const app = path.join(into, 'app');
  cpSync(fixture, app, { recursive: true });
  const template = JSON.parse(readFileSync(path.join(app, 'package.template.json'), 'utf8'));
  template.dependencies = Object.fromEntries(Object.entries(tarballs).map(([name, file]) => [name, `file:${file}`]));
  writeFileSync(path.join(app, 'package.json'), JSON.stringify(template, null, 2));
  rmSync(path.join(app, 'package.template.json'));
  return app;
}

/** This environment with cargo, rustc and rustup off the PATH: only Node's own directory and the system's. */
function withoutRust(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const dirs = [path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'];
  const kept = dirs.filter((d) => !existsSync(path.join(d, 'cargo')));
  return { ...env, PATH: kept.join(path.delimiter), CARGO_HOME: '/nonexistent', RUSTUP_HOME: '/nonexistent' };
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Otherwise the nested test runner reports to this one, not to stdout.
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function assertIntegrationPasses(app: string, env: NodeJS.ProcessEnv) {
  const out = run(['test'], app, env);
  assert.match(out, /# pass 1/);
  assert.match(out, /# fail 0/);
}

function inTempDir(fn: (dir: string) => void) {
  const dir = mkdtempSync(path.join(tmpdir(), 'native-events-install-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('with the prebuilt platform package it installs with scripts ignored and no Rust toolchain', { timeout: 10 * 60_000 }, () => {
  inTempDir((dir) => {
    const app = makeApp(dir, { [manifest.name]: packPublished(dir), [prebuiltName]: packPrebuilt(dir) });
    const env = withoutRust(baseEnv());
    const probe = spawnSync('/bin/sh', ['-c', 'command -v cargo'], { env });
    assert.equal(probe.error, undefined);
    assert.notEqual(probe.status, 0, 'cargo is hidden');
    run(['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], app, env);
    const installed = path.join(app, 'node_modules', ...manifest.name.split('/'));
    assert.deepEqual(
      readdirSync(path.join(installed, 'js')).filter((f) => f.endsWith('.node')),
      [],
      'the main package carries no binary',
    );
    assertIntegrationPasses(app, env);
    // With scripts allowed, the install step sees the prebuilt binary and
    // builds nothing (cargo is still hidden).
    run(['rebuild', manifest.name, '--foreground-scripts'], app, env);
    assert.deepEqual(readdirSync(path.join(installed, 'js')).filter((f) => f.endsWith('.node')), []);
  });
});

test('without a prebuilt package the install step builds the addon from source', { timeout: 20 * 60_000 }, () => {
  inTempDir((dir) => {
    const app = makeApp(dir, { [manifest.name]: packPublished(dir) });
    // Sharing the repository's target dir keeps the dependencies compiled.
    const env: NodeJS.ProcessEnv = { ...baseEnv(), CARGO_TARGET_DIR: path.join(root, 'target') };
    const out = run(['install', '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], app, env);
    assert.match(out, new RegExp(`looked for the package ${prebuiltName}`));
    const installed = path.join(app, 'node_modules', ...manifest.name.split('/'));
    assert.deepEqual(
      readdirSync(path.join(installed, 'js')).filter((f) => f.endsWith('.node')),
      [binaryFile],
      'the install step built the addon',
    );
    assertIntegrationPasses(app, env);
  });
});

test('a platform package of another version is not used: the install says why, and builds from source instead (here without cargo: it fails saying so)', { timeout: 10 * 60_000 }, () => {
  inTempDir((dir) => {
    const app = makeApp(dir, { [manifest.name]: packPublished(dir), [prebuiltName]: packPrebuilt(dir, '0.0.1-stale') });
    const r = npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], app, withoutRust(baseEnv()));
    assert.notEqual(r.status, 0, 'no cargo to build with');
    assert.match(`${r.stdout}\n${r.stderr}`, /cargo is not on the PATH/);
    assert.match(`${r.stdout}\n${r.stderr}`, new RegExp(`${prebuiltName} cannot be used: it is version 0\\.0\\.1-stale, this package ${manifest.version.replace(/\./g, '\\.')}`));
  });
});

test('with neither a prebuilt package nor cargo the install fails saying what it looked for and how to build', { timeout: 10 * 60_000 }, () => {
  inTempDir((dir) => {
    const app = makeApp(dir, { [manifest.name]: packPublished(dir) });
    const r = npm(['install', '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline'], app, withoutRust(baseEnv()));
    assert.notEqual(r.status, 0, 'the install fails');
    const said = `${r.stdout}\n${r.stderr}`;
    assert.match(said, new RegExp(`looked for the package ${prebuiltName}`));
    assert.match(said, /cargo is not on the PATH/);
    assert.match(said, /https:\/\/rustup\.rs/);
  });
});

// The user story end to end: pack this package, install the tarball into a
// separate TypeScript project (which builds the addon from source), compile
// that project and run its integration test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..');
const fixture = path.join(root, '__test__', 'fixtures', 'project');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync(npm, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    assert.fail(`npm ${args.join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}\n${e.stderr ?? e.message}`);
  }
}

test('the packed package installs into a TypeScript project and passes its integration test', { timeout: 20 * 60_000 }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'native-events-install-'));
  try {
    const packed = JSON.parse(run(['pack', '--json', '--pack-destination', dir], root)) as { filename: string }[];
    const tarball = path.join(dir, packed[0].filename);
    const app = path.join(dir, 'app');
    cpSync(fixture, app, { recursive: true });
    const manifest = readFileSync(path.join(app, 'package.template.json'), 'utf8').replace('TARBALL', tarball);
    writeFileSync(path.join(app, 'package.json'), manifest);
    rmSync(path.join(app, 'package.template.json'));
    // The tarball carries no binary, so this builds the addon with cargo;
    // sharing the repository's target dir keeps the dependencies compiled.
    const env: NodeJS.ProcessEnv = { ...process.env, CARGO_TARGET_DIR: path.join(root, 'target') };
    // Otherwise the nested test runner reports to this one, not to stdout.
    delete env.NODE_TEST_CONTEXT;
    const installed = path.join(app, 'node_modules', '@bootifyjs', 'native-events');
    run(['install', '--no-audit', '--no-fund', '--prefer-offline'], app, env);
    const binaries = readdirSync(path.join(installed, 'js')).filter((f) => f.endsWith('.node'));
    assert.equal(binaries.length, 1, 'the install step built the addon');
    const out = run(['test'], app, env);
    assert.match(out, /# pass 1/);
    assert.match(out, /# fail 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Type-level test: every ```ts sample in the README compiles against the
// public typings (index.d.ts), strict, with BootifyJS's decorator settings.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..');

test('the README samples compile against index.d.ts', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const samples = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(samples.length >= 4, `found ${samples.length} samples`);
  // Inside the repository, so imports of dev dependencies (fastify) resolve.
  const dir = mkdtempSync(path.join(root, 'dist-test', 'readme-types-'));
  try {
    const files = samples.map((code, i) => {
      const file = path.join(dir, `sample-${i}.ts`);
      writeFileSync(file, `${code}\nexport {};\n`);
      return file;
    });
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'ES2022',
          moduleResolution: 'bundler',
          strict: true,
          noEmit: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          types: ['node'],
          typeRoots: [path.join(root, 'node_modules/@types')],
          paths: { '@bootifyjs/native-events': [path.join(root, 'index.d.ts')] },
        },
        files,
      }),
    );
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `README samples do not compile:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the README's error list names every BusErrorCode, and the code raises no other", () => {
  const typings = readFileSync(path.join(root, 'index.d.ts'), 'utf8');
  const union = /export type BusErrorCode =([^;]*);/.exec(typings)?.[1] ?? '';
  const codes = [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]);
  assert.ok(codes.length >= 10, `found ${codes.length} codes`);
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const errors = /## Errors\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  for (const code of codes) assert.ok(errors.includes(`\`${code}\``), `README's Errors section lists ${code}`);
  const raised = new Set<string>();
  for (const dir of ['js', 'src']) {
    for (const file of readdirSync(path.join(root, dir), { recursive: true }) as string[]) {
      if (!/\.(ts|rs)$/.test(file) || file.endsWith('.d.ts')) continue;
      const text = readFileSync(path.join(root, dir, file), 'utf8');
      for (const m of text.matchAll(/BusError\('([A-Z_]+)'|=> "([A-Z_]{6,})"|"([A-Z_]{6,})"\.(?:to_string|into)\(\)/g)) raised.add(m[1] ?? m[2] ?? m[3]);
    }
  }
  assert.ok(raised.size >= 10, `found ${raised.size} raised codes`);
  for (const code of raised) assert.ok(codes.includes(code), `${code} is raised but is not a BusErrorCode`);
});

test('every path ARCHITECTURE.md names exists', () => {
  const text = readFileSync(path.join(root, 'ARCHITECTURE.md'), 'utf8');
  const paths = [...text.matchAll(/`((?:src|js|__test__)\/[\w./-]+)`/g)].map((m) => m[1]);
  assert.ok(paths.length >= 20, `found ${paths.length} paths`);
  for (const p of paths) assert.ok(existsSync(path.join(root, p)), `${p} exists`);
});

// The examples a new user runs first: they compile against the published
// typings and run to the end; the Fastify server serves its routes and
// stops cleanly on SIGTERM.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '..');
const built = path.join(root, 'examples', 'dist');

test('the examples compile and run', { timeout: 5 * 60_000 }, async (t) => {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'examples', 'tsconfig.json')], {
    encoding: 'utf8',
  });
  for (const [name, expected] of [
    ['user-registration.js', /Processed 5, .* left over 0/],
    ['order-processing.js', /dead-lettered 1, replayed 1, now in DLQ 0/],
  ] as const) {
    const r = spawnSync(process.execPath, [path.join(built, name)], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, expected, name);
  }

  await t.test('the Fastify server serves its routes and stops on SIGTERM', async () => {
    const server = spawn(process.execPath, [path.join(built, 'fastify-app.js')], {
      cwd: root,
      env: { ...process.env, PORT: '0', ADMIN_TOKEN: 'example-token' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    server.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    server.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      let origin: string | undefined;
      while (!origin && Date.now() < deadline) {
        origin = /Dashboard: (http:\/\/[^/\s]+)\/events\/dashboard#token=example-token/.exec(out)?.[1];
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(origin, `the server printed its dashboard URL:\n${out}`);
      assert.equal((await fetch(`${origin}/events/dashboard`)).status, 200);
      // Its own traffic flows through the bus.
      let processed = 0;
      while (processed === 0 && Date.now() < deadline) {
        const metrics = await (await fetch(`${origin}/events/metrics`)).text();
        processed = Number(/^bootify_events_succeeded_total (\d+)/m.exec(metrics)?.[1] ?? 0);
        if (processed === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(processed > 0, 'events were processed');
      const letters = await fetch(`${origin}/events/dead-letters`, { headers: { authorization: 'Bearer example-token' } });
      assert.equal(letters.status, 200);
      assert.equal((await fetch(`${origin}/events/dead-letters`)).status, 403, 'no token, no admin routes');
    } finally {
      server.kill('SIGTERM');
    }
    assert.equal(await exited, 0, out);
    assert.match(out, /Stopped: \d+ events processed/);
  });
});

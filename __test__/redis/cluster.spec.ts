// examples/cluster.ts, BootifyJS's cluster mode on the Redis backend, run
// as a user would run it, against a real redis-server.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.join(__dirname, '..', '..');
const skip = process.env.REDIS_URL ? false : 'REDIS_URL is not set (run through scripts/with-redis.sh)';

test('the cluster example: forked workers share one bus, the primary only emits', { skip, timeout: 120_000 }, () => {
  const script = path.join(root, 'examples', 'dist', 'cluster.js');
  if (!existsSync(script)) {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'examples', 'tsconfig.json')]);
  }
  const run = spawnSync(process.execPath, [script], {
    encoding: 'utf8',
    timeout: 90_000,
    env: { ...process.env, WORKERS: '3', ORDERS: '30', BUS_NAME: `cluster-${process.pid}` },
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /30 orders handled \(30 distinct\), by worker: /);
  assert.match(run.stdout, /the primary took 0 events itself/);
  const shares = [...run.stdout.matchAll(/#\d+: (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(shares.reduce((a, b) => a + b, 0), 30, 'each order handled once');
});

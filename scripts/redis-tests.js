// npm run test:redis: the tests that need a Redis server, run against a
// throwaway one (scripts/with-redis.sh). Without a server to be had they
// are skipped, and this says so, loudly, instead of failing.
const { spawnSync } = require('node:child_process');
const { readdirSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const specs = readdirSync(path.join(root, 'dist-test', 'redis'))
  .filter((f) => f.endsWith('.spec.js'))
  .map((f) => path.join('dist-test', 'redis', f));
const run = spawnSync('bash', [path.join(__dirname, 'with-redis.sh'), process.execPath, '--test', '--test-concurrency=1', ...specs], {
  cwd: root,
  stdio: 'inherit',
});
if (run.status === 3) {
  console.log('\n*** SKIPPED the Redis tests: no redis-server could be had (see scripts/with-redis.sh) ***\n');
  // CI sets REQUIRE_REDIS: there a missing server is a failure, not a skip.
  process.exit(process.env.REQUIRE_REDIS ? 1 : 0);
}
process.exit(run.status ?? 1);

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService, defaultBufferedEventConfig } from '..';

function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = { ...process.env };
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const key of Object.keys(vars)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

test('defaults are BootifyJS defaults', () => {
  const d = defaultBufferedEventConfig;
  assert.equal(d.workerCount, 5);
  assert.equal(d.maxQueueSize, 10_000);
  assert.deepEqual(d.retryDelays, [1000, 2000, 4000]);
  assert.deepEqual(d.priorities, { critical: 3, normal: 2, low: 1 });
  assert.equal(d.reliabilityLimits.gracefulShutdownTimeout, 10_000);
  assert.equal(d.monitoring.alertThresholds.queueDepthWarning, 8000);
  assert.ok(Object.isFrozen(d) && Object.isFrozen(d.monitoring));
});

test('the seed configuration is accepted and merged key by key', async () => {
  const bus = new BufferedEventBusService({
    ...defaultBufferedEventConfig,
    enabled: true,
    workerCount: 4,
    maxQueueSize: 10_000,
    monitoring: { enabled: true, metricsInterval: 5000 },
  });
  const c = bus.getConfig();
  assert.equal(c.workerCount, 4);
  assert.equal(c.monitoring.metricsInterval, 5000);
  assert.equal(c.monitoring.healthCheckInterval, 5000, 'unspecified nested keys keep their defaults');
  c.workerCount = 99;
  assert.equal(bus.getConfig().workerCount, 4, 'getConfig returns a copy');
  await bus.shutdown();
});

test('BUFFERED_EVENTS_* variables override the config', async () => {
  const bus = withEnv(
    { BUFFERED_EVENTS_WORKER_COUNT: '3', BUFFERED_EVENTS_MAX_QUEUE_SIZE: '500', BUFFERED_EVENTS_ENABLED: 'false' },
    () => new BufferedEventBusService({ workerCount: 8 }),
  );
  const c = bus.getConfig();
  assert.deepEqual([c.workerCount, c.maxQueueSize, c.enabled], [3, 500, false]);
  await bus.shutdown();
  assert.throws(
    () => withEnv({ BUFFERED_EVENTS_RETRY_ATTEMPTS: 'many' }, () => new BufferedEventBusService()),
    { code: 'INVALID_CONFIG', message: /BUFFERED_EVENTS_RETRY_ATTEMPTS/ },
  );
});

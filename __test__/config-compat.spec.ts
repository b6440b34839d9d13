// Configurations written the way BootifyJS code writes them: spread from the
// defaults (ours, or BootifyJS's own object), overridden at the top level or
// in a nested group; the TS bus's options shape; the guide's names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService, defaultBufferedEventConfig } from '..';
import { bootifyDefaultBufferedEventConfig } from './bootify-app/framework';
import { rejectsWithCode } from './helpers';

type Tree = Record<string, any>;

/** Each field BootifyJS keeps twice: [top-level path, nested path, a valid non-default value, another]. */
const MIRRORS: [string, string, number, number][] = [
  ['maxQueueSize', 'memoryLimits.maxQueueSize', 1000, 2000],
  ['maxEventSize', 'memoryLimits.maxEventSize', 2048, 4096],
  ['maxMemoryMB', 'memoryLimits.totalMemoryMB', 10, 20],
  ['retryAttempts', 'reliabilityLimits.maxRetryAttempts', 1, 5],
  ['monitoring.healthCheckInterval', 'reliabilityLimits.healthCheckInterval', 2000, 3000],
];

const get = (tree: Tree, path: string): unknown => path.split('.').reduce<any>((node, key) => node?.[key], tree);

/** A deep copy of `base` with `path` set, as a spread-and-override writes it. */
function spreadWith(base: Tree, path: string, value: unknown): Tree {
  const copy = structuredClone(base);
  const keys = path.split('.');
  const last = keys.pop() as string;
  keys.reduce<any>((node, key) => node[key], copy)[last] = value;
  return copy;
}

for (const [name, defaults] of [
  ['this package', defaultBufferedEventConfig],
  ["BootifyJS's", bootifyDefaultBufferedEventConfig],
] as const) {
  test(`the seed's spread of ${name} defaults with top-level overrides is accepted`, () => {
    const bus = new BufferedEventBusService({
      ...defaults,
      enabled: true,
      workerCount: 2,
      maxQueueSize: 1000,
      maxMemoryMB: 10,
      monitoring: { ...defaults.monitoring, metricsInterval: 2000 },
    });
    const c = bus.getConfig();
    assert.equal(c.workerCount, 2);
    assert.equal(c.maxQueueSize, 1000);
    assert.equal(c.memoryLimits.maxQueueSize, 1000);
    assert.equal(c.maxMemoryMB, 10);
    assert.equal(c.memoryLimits.totalMemoryMB, 10);
    assert.equal(c.monitoring.metricsInterval, 2000);
  });

  for (const [top, nested, value, other] of MIRRORS) {
    test(`${name} defaults: ${top} and ${nested} follow whichever one was changed`, async () => {
      for (const [changed, mirror] of [
        [top, nested],
        [nested, top],
      ]) {
        const c = new BufferedEventBusService(spreadWith(defaults, changed, value)).getConfig() as unknown as Tree;
        assert.equal(get(c, changed), value, `${changed} changed`);
        assert.equal(get(c, mirror), value, `${mirror} follows ${changed}`);
      }
      const both = spreadWith(spreadWith(defaults, top, value), nested, other);
      await rejectsWithCode(() => new BufferedEventBusService(both), 'INVALID_CONFIG', `${top} \\(${value}\\) and ${nested} \\(${other}\\) disagree`);
      const agree = spreadWith(spreadWith(defaults, top, value), nested, value);
      assert.equal(get(new BufferedEventBusService(agree).getConfig() as unknown as Tree, top), value);
    });
  }
}

test('an unknown key is an error naming it and the closest known key', async () => {
  await rejectsWithCode(() => new BufferedEventBusService({ workerCount: 3, maxQueueSzie: 10 } as never), 'INVALID_CONFIG', "unknown key 'maxQueueSzie' \\(did you mean 'maxQueueSize'\\?\\)");
  await rejectsWithCode(
    () => new BufferedEventBusService({ monitoring: { ...defaultBufferedEventConfig.monitoring, helthCheckInterval: 10 } } as never),
    'INVALID_CONFIG',
    "monitoring.helthCheckInterval' \\(did you mean 'monitoring.healthCheckInterval'",
  );
});

test("the TS bus's { config, fallbackToSync, enableMetrics, enableHealthMonitoring } options are honoured", () => {
  const c = new BufferedEventBusService({
    config: { workerCount: 4, maxQueueSize: 10000, maxMemoryMB: 512 },
    fallbackToSync: false,
    enableMetrics: false,
    enableHealthMonitoring: false,
  }).getConfig();
  assert.equal(c.workerCount, 4);
  assert.equal(c.maxMemoryMB, 512);
  assert.equal(c.fallbackToSync, false);
  assert.equal(c.monitoring.enabled, false);
  assert.equal(c.monitoring.healthMonitoring, false);
  // Same as the flat form.
  const flat = new BufferedEventBusService({ workerCount: 4, maxMemoryMB: 512, fallbackToSync: false, monitoring: { enabled: false, healthMonitoring: false } });
  assert.deepEqual(flat.getConfig(), c);
});

test("the guide's config names map to the canonical fields, and a conflict is an error", async () => {
  const c = new BufferedEventBusService({ ...defaultBufferedEventConfig, maxRetries: 2, retryDelayMs: 200, retryBackoffMultiplier: 3, batchSize: 50, processingIntervalMs: 10 }).getConfig();
  assert.equal(c.retryAttempts, 2);
  assert.deepEqual(c.retryDelays, [200, 600]);
  await rejectsWithCode(() => new BufferedEventBusService({ retryAttempts: 4, maxRetries: 2 }), 'INVALID_CONFIG', 'retryAttempts \\(4\\) and maxRetries \\(2\\) disagree');
  await rejectsWithCode(() => new BufferedEventBusService({ batchSize: 0 }), 'INVALID_CONFIG', 'batchSize');
});

test('values JSON cannot carry, and getters that throw, are errors naming the field', async () => {
  await rejectsWithCode(() => new BufferedEventBusService({ workerCount: NaN }), 'INVALID_CONFIG', 'workerCount must be a finite number, got NaN');
  await rejectsWithCode(() => new BufferedEventBusService({ maxQueueSize: Infinity }), 'INVALID_CONFIG', 'maxQueueSize');
  await rejectsWithCode(() => new BufferedEventBusService({ retryAttempts: 2n } as never), 'INVALID_CONFIG', 'retryAttempts must be a number, got a BigInt');
  await rejectsWithCode(() => new BufferedEventBusService({ workerCount: null } as never), 'INVALID_CONFIG', 'workerCount must be an integer, got null');
  const hostile = {
    get monitoring(): never {
      throw new Error('boom');
    },
  };
  await rejectsWithCode(() => new BufferedEventBusService(hostile as never), 'INVALID_CONFIG', 'reading monitoring threw: boom');
  // undefined means "not given", as optional overrides write it.
  assert.equal(new BufferedEventBusService({ ...defaultBufferedEventConfig, workerCount: undefined }).getConfig().workerCount, 5);
});

test('timers a JavaScript timer cannot honour are refused', async () => {
  await rejectsWithCode(() => new BufferedEventBusService({ monitoring: { metricsInterval: 2 ** 31 } }), 'INVALID_CONFIG', 'monitoring.metricsInterval');
  await rejectsWithCode(() => new BufferedEventBusService({ reliabilityLimits: { gracefulShutdownTimeout: 2 ** 31 } }), 'INVALID_CONFIG', 'gracefulShutdownTimeout');
});

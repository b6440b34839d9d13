// updateConfig: live settings change behaviour at once; fixed ones refuse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultBufferedEventConfig } from '..';
import { blockWindow, deferred, rejectsWithCode, startedBus, waitFor } from './helpers';

test('a new retry delay is used by the next retry', async (t) => {
  // With the initial delay the retry would come after a minute.
  const bus = await startedBus(t, { retryAttempts: 1, retryDelays: [60_000] });
  await bus.updateConfig({ retryDelays: [100] });
  let runs = 0;
  bus.registerHandler('flaky', () => {
    if (runs++ === 0) throw new Error('first run fails');
  });
  await bus.emitEvent('flaky', {});
  await waitFor(() => runs === 2, 'the retry with the new delay');
  assert.deepEqual(bus.getConfig().retryDelays, [100]);
  assert.equal(bus.getConfig().retryAttempts, 1);
});

test('retryAttempts and handlerTimeout change live', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 3, retryDelays: [100] });
  await bus.updateConfig({ retryAttempts: 0, handlerTimeout: 50 });
  bus.registerHandler('hangs', () => new Promise(() => {}));
  await bus.emitEvent('hangs', {});
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'a dead letter after one timed-out attempt');
  const [letter] = bus.getDeadLetterQueue();
  assert.equal(letter.attempts, 1);
  assert.match(letter.lastError.message, /handlerTimeout \(50 ms\)/);
});

test('a smaller window holds back dispatch until running handlers finish', async (t) => {
  const bus = await startedBus(t, { concurrency: 4 });
  const gate = deferred();
  let running = 0;
  let most = 0;
  bus.registerHandler('slow', async () => {
    most = Math.max(most, ++running);
    await gate.promise;
    running--;
  });
  await bus.updateConfig({ concurrency: 1 });
  for (let i = 0; i < 5; i++) await bus.emitEvent('slow', { i });
  await waitFor(() => running === 1, 'one running handler');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(most, 1);
  gate.resolve();
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 5, 'all five');
  assert.equal(most, 1);
  await rejectsWithCode(() => bus.updateConfig({ concurrency: 8 }), 'INVALID_CONFIG', 'concurrency can change on a running bus up to 4');
});

test('worker count, monitoring intervals and fallbackToSync change live', async (t) => {
  const bus = await startedBus(t, { monitoring: { metricsInterval: 60_000 }, concurrency: 1, maxQueueSize: 100, fallbackToSync: false });
  await bus.updateConfig({ workerCount: 3 });
  assert.equal(bus.getWorkerStatistics().totalWorkers, 3);
  let ticks = 0;
  bus.on('metrics', () => ticks++);
  await bus.updateConfig({ monitoring: { metricsInterval: 20 } });
  await waitFor(() => ticks >= 2, 'metrics at the new interval');

  const release = await blockWindow(bus);
  bus.registerHandler('fill', () => {});
  for (let i = 0; i < 100; i++) await bus.emitEvent('fill', { i });
  await rejectsWithCode(() => bus.emitEvent('fill', {}), 'QUEUE_FULL');
  await bus.updateConfig({ fallbackToSync: true });
  await bus.emitEvent('fill', { inline: true });
  assert.equal(bus.getMetrics().queueMetrics.handledInline, 1);
  release();
});

test('fields fixed at construction are refused by name, and nothing changes', async (t) => {
  const bus = await startedBus(t, { maxQueueSize: 1000 });
  const before = bus.getConfig();
  await rejectsWithCode(
    () => bus.updateConfig({ retryDelays: [200], maxQueueSize: 2000, priorities: { low: 5 } }),
    'INVALID_CONFIG',
    'maxQueueSize cannot change on a running bus \\(1000 -> 2000\\).*priorities.low',
  );
  await rejectsWithCode(() => bus.updateConfig({ retryAttempts: 11 }), 'INVALID_CONFIG', 'retryAttempts');
  await rejectsWithCode(() => bus.updateConfig({ retryAtempts: 1 } as never), 'INVALID_CONFIG', "did you mean 'retryAttempts'");
  assert.deepEqual(bus.getConfig(), before);
  // A spread of the running config with one change is fine.
  await bus.updateConfig({ ...bus.getConfig(), retryAttempts: 1 });
  assert.equal(bus.getConfig().retryAttempts, 1);
  assert.equal(bus.getConfig().reliabilityLimits.maxRetryAttempts, 1);
  // So is a spread of the defaults that leaves the fixed fields alone.
  await bus.updateConfig({ ...defaultBufferedEventConfig, maxQueueSize: 1000, memoryLimits: { ...defaultBufferedEventConfig.memoryLimits, maxQueueSize: 1000 }, retryAttempts: 2 });
  assert.equal(bus.getConfig().retryAttempts, 2);
});

test('updateConfig after shutdown is refused', async (t) => {
  const bus = await startedBus(t);
  await bus.shutdown();
  await rejectsWithCode(() => bus.updateConfig({ retryAttempts: 1 }), 'SHUTTING_DOWN');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockWindow, rejectsWithCode, startedBus, waitFor } from './helpers';

test('without fallbackToSync a full queue rejects with QUEUE_FULL and drops nothing', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, maxQueueSize: 100, fallbackToSync: false });
  const handled: number[] = [];
  bus.registerHandler('work', (e: { n: number }) => {
    handled.push(e.n);
  });
  const release = await blockWindow(bus);
  for (let n = 0; n < 100; n++) await bus.emitEvent('work', { n });
  await rejectsWithCode(() => bus.emitEvent('work', { n: 100 }), 'QUEUE_FULL', 'maxQueueSize');
  assert.equal(bus.getMetrics().queueMetrics.size, 100);
  assert.equal(bus.getMetrics().queueMetrics.rejected.QUEUE_FULL, 1);
  release();
  await waitFor(() => handled.length === 100, 'every accepted event');
  assert.deepEqual(handled, [...Array(100).keys()]);
  await bus.emitEvent('work', { n: 100 });
  await waitFor(() => handled.length === 101, 'an event after the queue drained');
});

test('with fallbackToSync a full queue handles the event inline and awaits it', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, maxQueueSize: 100, fallbackToSync: true });
  const handled: number[] = [];
  bus.registerHandler('work', async (e: { n: number }) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    handled.push(e.n);
  });
  const release = await blockWindow(bus);
  for (let n = 0; n < 100; n++) await bus.emitEvent('work', { n });
  const id = await bus.emitEvent('work', { n: 999 });
  assert.equal(typeof id, 'string');
  assert.deepEqual(handled, [999], 'handled inline before emitEvent resolved');
  assert.equal(bus.getMetrics().queueMetrics.handledInline, 1);
  release();
  await waitFor(() => handled.length === 101, 'the queued events');
});

test('maxMemoryMB bounds the bytes queued', async (t) => {
  const bus = await startedBus(t, {
    concurrency: 1,
    maxMemoryMB: 10,
    maxEventSize: 4 * 1024 * 1024,
    fallbackToSync: false,
  });
  bus.registerHandler('big', () => {});
  const release = await blockWindow(bus);
  const blob = 'x'.repeat(3 * 1024 * 1024);
  for (let i = 0; i < 3; i++) await bus.emitEvent('big', { blob });
  assert.ok(bus.getMetrics().queueMetrics.memoryUsage > 0.85, 'memory usage is measured');
  await rejectsWithCode(() => bus.emitEvent('big', { blob }), 'QUEUE_FULL', 'maxMemoryMB');
  release();
  await waitFor(() => bus.getMetrics().queueMetrics.bytesQueued === 0, 'the queue to drain');
  assert.equal(bus.getMetrics().queueMetrics.memoryUsage, 0);
});

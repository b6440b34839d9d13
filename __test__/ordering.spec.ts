import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventPriority } from '..';
import { blockWindow, startedBus, waitFor } from './helpers';

test('queued critical events go before normal, normal before low', async (t) => {
  const bus = await startedBus(t, { concurrency: 1 });
  const order: string[] = [];
  bus.registerHandler('work', (e: { label: string }) => {
    order.push(e.label);
  });
  const release = await blockWindow(bus);

  const emitted: [EventPriority, string][] = [
    ['low', 'l1'], ['normal', 'n1'], ['critical', 'c1'], ['low', 'l2'],
    ['critical', 'c2'], ['normal', 'n2'], ['low', 'l3'], ['critical', 'c3'],
  ];
  for (const [priority, label] of emitted) await bus.emitEvent('work', { label }, { priority });
  const byPriority = bus.getMetrics().queueMetrics.byPriority;
  assert.deepEqual([byPriority.critical.queued, byPriority.normal.queued, byPriority.low.queued], [3, 2, 3]);

  release();
  await waitFor(() => order.length === emitted.length, 'every event');
  assert.deepEqual(order, ['c1', 'c2', 'c3', 'n1', 'n2', 'l1', 'l2', 'l3']);
});

test('a low event waiting behind a sustained critical stream is served within agingMs', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, agingMs: 50, workerCount: 1 });
  let lowHandledAt = 0;
  let criticalHandled = 0;
  bus.registerHandler('low', () => {
    lowHandledAt = Date.now();
  });
  bus.registerHandler('critical', () => new Promise<void>((resolve) => setTimeout(() => {
    criticalHandled++;
    resolve();
  }, 2)));
  // Keep a few critical events queued at all times for up to 5 s.
  for (let i = 0; i < 5; i++) await bus.emitEvent('critical', {}, { priority: 'critical' });
  const start = Date.now();
  await bus.emitEvent('low', {}, { priority: 'low' });
  while (lowHandledAt === 0 && Date.now() - start < 5000) {
    while (bus.getMetrics().queueMetrics.byPriority.critical.queued < 5) {
      await bus.emitEvent('critical', {}, { priority: 'critical' });
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(lowHandledAt > 0, 'the low event starved');
  assert.ok(bus.getMetrics().queueMetrics.byPriority.critical.queued > 0, 'critical events were still waiting');
  assert.ok(criticalHandled > 3, 'the critical stream was being served');
  // The bound is agingMs after the low event is first passed over; allow
  // for a loaded machine, but it must be far below the 5 s stream.
  assert.ok(lowHandledAt - start < 2000, `low waited ${lowHandledAt - start} ms`);
});

test('priority weights decide lane order', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, priorities: { critical: 1, normal: 2, low: 3 } });
  const order: string[] = [];
  bus.registerHandler('work', (e: { label: string }) => {
    order.push(e.label);
  });
  const release = await blockWindow(bus);
  await bus.emitEvent('work', { label: 'c' }, { priority: 'critical' });
  await bus.emitEvent('work', { label: 'l' }, { priority: 'low' });
  await bus.emitEvent('work', { label: 'n' }, { priority: 'normal' });
  release();
  await waitFor(() => order.length === 3, 'every event');
  assert.deepEqual(order, ['l', 'n', 'c']);
});

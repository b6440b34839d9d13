import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService, testing } from '..';
import { startedBus, waitFor } from './helpers';

test('a native worker panic loses no event and is reported', async (t) => {
  const bus = await startedBus(t, { workerCount: 2, concurrency: 8, reliabilityLimits: { workerRestartDelay: 20 } });
  const errors: Error[] = [];
  bus.on('worker_error', (err) => errors.push(err));
  const seen = new Map<number, number>();
  bus.registerHandler('tick', async (e: { n: number }) => {
    seen.set(e.n, (seen.get(e.n) ?? 0) + 1);
  });
  testing.injectWorkerPanic(bus);
  const total = 500;
  for (let n = 0; n < total; n++) await bus.emitEvent('tick', { n }, { priority: n % 3 === 0 ? 'critical' : 'normal' });
  await waitFor(() => seen.size === total, 'every event');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok([...seen.values()].every((count) => count === 1), 'no event handled twice');
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, 'WORKER_PANIC');
  assert.match(errors[0].message, /injected/);
  const stats = bus.getWorkerStatistics();
  assert.equal(stats.restarts, 1);
  assert.equal(stats.totalWorkers, 2, 'the worker carried on');
  assert.equal(bus.getMetrics().queueMetrics.succeeded, total);
});

test('without workers, fallbackToSync handles events inline', async (t) => {
  const bus = new BufferedEventBusService({ fallbackToSync: true });
  t.after(() => bus.shutdown());
  const handled: number[] = [];
  bus.registerHandler('x', (e: { n: number }) => void handled.push(e.n));
  const errors: Error[] = [];
  bus.on('worker_error', (err) => errors.push(err));
  await bus.emitEvent('x', { n: 1 });
  testing.failWorkerStarts(bus);
  await bus.initialize();
  assert.equal((errors[0] as { code?: string }).code, 'WORKERS_UNAVAILABLE');
  assert.deepEqual(handled, [1], 'events queued before initialize() ran inline');
  await bus.emitEvent('x', { n: 2 });
  assert.deepEqual(handled, [1, 2], 'handled before emitEvent resolved');
  assert.ok(bus.isReady());
});

test('without workers and without fallbackToSync, emitting is refused with a code', async (t) => {
  const bus = new BufferedEventBusService({ fallbackToSync: false });
  t.after(() => bus.shutdown());
  testing.failWorkerStarts(bus);
  await assert.rejects(bus.initialize(), { code: 'WORKERS_UNAVAILABLE' });
  await assert.rejects(bus.emitEvent('x', {}), { code: 'WORKERS_UNAVAILABLE' });
  assert.equal(bus.isReady(), false);
});

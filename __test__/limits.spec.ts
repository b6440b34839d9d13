// What stays bounded however an application uses the bus: per-type
// metrics with very many event types, and dead letters read page by page.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

test('with many event types, metrics report the busiest 1000 and sum the rest', async (t) => {
  const bus = await startedBus(t);
  const types = 1500;
  bus.registerHandler('busy', () => {});
  for (let i = 0; i < 5; i++) await bus.emitEvent('busy', { i });
  for (let i = 0; i < types; i++) await bus.emitEvent(`user.${i}.created`, { i });
  await waitFor(() => {
    const q = bus.getMetrics().queueMetrics;
    return q.succeeded + q.unhandled === types + 5;
  }, 'every event');
  const byType = bus.getMetrics().queueMetrics.byType;
  const names = Object.keys(byType);
  assert.equal(names.length, 1001);
  assert.equal(names[0], 'busy', 'busiest first');
  assert.equal(byType.busy.dispatched, 5);
  const other = byType['(other types)'];
  assert.ok(other, 'the rest summed under one entry');
  assert.equal(other.handlers, types + 1 - 1000, 'how many types it sums');
  const dispatched = Object.values(byType).reduce((sum, m) => sum + m.dispatched, 0);
  assert.equal(dispatched, types + 5, 'no delivery missing from the sum');
  // Health checks and worker statistics do not carry per-type data.
  assert.equal((await bus.getHealthStatus()).status === 'unhealthy', false);
});

test('dead letters can be read a page at a time', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  bus.registerHandler('fails', (e: { n: number }) => {
    throw new Error(`no ${e.n}`);
  });
  for (let n = 0; n < 25; n++) await bus.emitEvent('fails', { n });
  await waitFor(() => bus.getDeadLetterQueue().length === 25, 'every dead letter');
  const ns = (page: { offset?: number; limit?: number }) => bus.getDeadLetterQueue(page).map((d) => (d.payload as { n: number }).n);
  assert.deepEqual(ns({ limit: 3 }), [0, 1, 2]);
  assert.deepEqual(ns({ offset: 10, limit: 2 }), [10, 11]);
  assert.deepEqual(ns({ offset: 23 }), [23, 24]);
  assert.deepEqual(ns({ offset: 99, limit: 5 }), []);
  assert.equal(bus.getDeadLetterQueue({}).length, 25);
  for (const bad of [{ offset: -1 }, { limit: 1.5 }, { limit: '10' }, { offset: 2 ** 32 }]) {
    await rejectsWithCode(() => bus.getDeadLetterQueue(bad as never), 'INVALID_ARGUMENT', Object.keys(bad)[0]);
  }
  await rejectsWithCode(() => bus.getDeadLetterQueue(5 as never), 'INVALID_ARGUMENT');
  const hostile = Object.defineProperty({}, 'offset', {
    get() {
      throw new Error('boom');
    },
  });
  await rejectsWithCode(() => bus.getDeadLetterQueue(hostile), 'INVALID_ARGUMENT', 'offset');
});

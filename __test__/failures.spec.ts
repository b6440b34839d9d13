import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HandlerErrorInfo } from '..';
import { startedBus, waitFor } from './helpers';

test('throwing, rejecting and odd return values never crash and are counted', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  const errors: HandlerErrorInfo[] = [];
  bus.on('handler_error', (info) => errors.push(info));
  bus.registerHandler('sync-throw', function syncThrow() {
    throw new Error('sync boom');
  });
  bus.registerHandler('reject', async function rejecting() {
    throw new Error('async boom');
  });
  bus.registerHandler('non-promise', () => 42);
  bus.registerHandler('thenable-twice', () => ({
    then(ok: () => void, fail: (e: unknown) => void) {
      ok();
      fail(new Error('late'));
    },
  }));
  bus.registerHandler('throw-non-error', () => {
    throw 'a string';
  });
  bus.registerHandler('then-throws', function thenThrows() {
    return {
      then() {
        throw new Error('then boom');
      },
    };
  });
  class BrokenPromise extends Promise<void> {
    override then(): never {
      throw new Error('subclass then boom');
    }
  }
  bus.registerHandler('subclass-then-throws', function brokenPromise() {
    return new BrokenPromise(() => {});
  });
  const types = ['sync-throw', 'reject', 'non-promise', 'thenable-twice', 'throw-non-error', 'then-throws', 'subclass-then-throws'];
  for (const type of types) {
    await bus.emitEvent(type, { type });
  }
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === types.length, 'every event');
  const q = bus.getMetrics().queueMetrics;
  assert.equal(q.failed, 5);
  assert.equal(q.succeeded, 2);
  assert.equal(q.handlerFailures, 5);
  assert.equal(bus.getMetrics().retryStats.successRate, 2 / 7);
  assert.deepEqual(errors.map((e) => e.handler).sort(), ['anonymous', 'brokenPromise', 'rejecting', 'syncThrow', 'thenThrows']);
  assert.equal(errors.find((e) => e.handler === 'syncThrow')?.event.type, 'sync-throw');
});

test('in a fan-out one failing handler does not stop the others', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  const ran: string[] = [];
  bus.registerHandler('x', () => {
    ran.push('a');
  });
  bus.registerHandler('x', () => {
    throw new Error('b fails');
  });
  bus.registerHandler('x', async () => {
    ran.push('c');
  });
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 1, 'the event');
  assert.deepEqual(ran.sort(), ['a', 'c']);
  assert.equal(bus.getMetrics().queueMetrics.failed, 1, 'the event ended with a dead letter');
  assert.equal(bus.getMetrics().queueMetrics.deliveries.failed, 1);
  assert.equal(bus.getMetrics().queueMetrics.handlerFailures, 1);
});

test('outcomes stay with their events while slots are reused out of order', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0, concurrency: 8 });
  const failedIds: number[] = [];
  bus.on('handler_error', (info) => failedIds.push((info.event.payload as { i: number }).i));
  bus.registerHandler('mixed', (e: { i: number }) =>
    new Promise<void>((resolve, reject) => {
      // Settle in an order unrelated to emission, so slots free up out of order.
      setTimeout(() => (e.i % 3 === 0 ? reject(new Error(`no ${e.i}`)) : resolve()), (e.i * 7) % 5);
    }));
  const n = 300;
  for (let i = 0; i < n; i++) bus.emitEvent('mixed', { i });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === n, 'every event');
  const expected = Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 === 0);
  assert.deepEqual(failedIds.sort((a, b) => a - b), expected);
  const q = bus.getMetrics().queueMetrics;
  assert.equal(q.failed, expected.length);
  assert.equal(q.succeeded, n - expected.length);
});

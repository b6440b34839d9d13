import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BufferedEvent } from '..';
import { blockWindow, startedBus, waitFor } from './helpers';

test('a handler registered while events wait in the queue receives them', async (t) => {
  const bus = await startedBus(t, { concurrency: 1 });
  const release = await blockWindow(bus);
  for (let n = 0; n < 3; n++) await bus.emitEvent('late', { n });
  const seen: number[] = [];
  bus.registerHandler('late', (e: BufferedEvent<{ n: number }>) => void seen.push(e.n));
  release();
  await waitFor(() => seen.length === 3, 'the queued events');
  assert.deepEqual(seen, [0, 1, 2]);
});

test('a retry for a handler that was unregistered meanwhile ends quietly', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 1, retryDelays: [150] });
  const handler = () => {
    throw new Error('first run fails');
  };
  bus.registerHandler('x', handler);
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getMetrics().retryStats.scheduledRetries === 1, 'the retry');
  assert.equal(bus.unregisterHandler('x', handler), true);
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 1, 'the event to finish');
  assert.equal(bus.getMetrics().queueMetrics.deliveries.unhandled, 1);
  assert.equal(bus.getDeadLetterQueue().length, 0);
});

test('a handler can emit further events, which are delivered too', async (t) => {
  const bus = await startedBus(t);
  const seen: string[] = [];
  bus.registerHandler('order.created', async (e: BufferedEvent<{ orderId: string }>) => {
    seen.push(`created ${e.orderId}`);
    await bus.emitEvent('order.audited', { orderId: e.orderId }, { correlationId: e.correlationId });
  });
  bus.registerHandler('order.audited', (e: BufferedEvent<{ orderId: string }>) => void seen.push(`audited ${e.orderId} ${e.correlationId}`));
  await bus.emitEvent('order.created', { orderId: 'o1' }, { correlationId: 'c1' });
  await waitFor(() => seen.length === 2, 'both events');
  assert.deepEqual(seen, ['created o1', 'audited o1 c1']);
});

test('dead letters replayed after shutdown are refused with a code', async () => {
  const { BufferedEventBusService } = await import('..');
  const bus = new BufferedEventBusService({ retryAttempts: 0 });
  bus.registerHandler('x', () => {
    throw new Error('no');
  });
  await bus.initialize();
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
  await bus.shutdown();
  assert.throws(() => bus.replayDeadLetter(), { code: 'SHUTTING_DOWN' });
  assert.equal(bus.getDeadLetterQueue().length, 1, 'still inspectable after shutdown');
  assert.equal(bus.clearDeadLetterQueue(), 1);
});

test('payload fields named like event fields do not overwrite them', async (t) => {
  const bus = await startedBus(t);
  let got: BufferedEvent | undefined;
  bus.registerHandler('clash', (e: BufferedEvent) => {
    got = e;
  });
  const payload = { type: 'not-the-type', id: 'not-the-id', priority: 'urgent', other: 1 };
  const id = await bus.emitEvent('clash', payload, { priority: 'low' });
  await waitFor(() => got !== undefined, 'the event');
  assert.equal(got!.type, 'clash');
  assert.equal(got!.id, id);
  assert.equal(got!.priority, 'low');
  assert.equal((got as unknown as { other: number }).other, 1);
  assert.equal((got!.payload as typeof payload).type, 'not-the-type');
});

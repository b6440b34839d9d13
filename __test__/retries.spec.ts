import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BufferedEvent, NonRetryableError } from '..';
import { startedBus, waitFor } from './helpers';

const fast = { retryAttempts: 2, retryDelays: [100, 200] };

test('a failing handler runs 1 + retryAttempts times with backoff, then is dead-lettered', async (t) => {
  const bus = await startedBus(t, fast);
  const runs: { at: number; retryCount: number; priority: string; correlationId: string }[] = [];
  bus.registerHandler('charge', async function chargeCard(e: BufferedEvent) {
    runs.push({ at: Date.now(), retryCount: e.retryCount, priority: e.priority, correlationId: e.correlationId });
    throw new Error(`card declined (${e.retryCount})`);
  });
  await bus.emitEvent('charge', { amount: 5 }, { priority: 'critical', correlationId: 'order-1' });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
  assert.deepEqual(runs.map((r) => r.retryCount), [0, 1, 2]);
  assert.ok(runs.every((r) => r.priority === 'critical' && r.correlationId === 'order-1'), 'priority and correlation id kept');
  const gaps = [runs[1].at - runs[0].at, runs[2].at - runs[1].at];
  // retryDelays[k] ± 25 %, never under 100 ms (timer slack on a loaded machine allowed above).
  assert.ok(gaps[0] >= 99 && gaps[0] < 1000, `first delay ${gaps[0]} ms`);
  assert.ok(gaps[1] >= 149 && gaps[1] < 1500, `second delay ${gaps[1]} ms`);

  const [entry] = bus.getDeadLetterQueue();
  assert.equal(entry.handler, 'chargeCard');
  assert.equal(entry.attempts, 3);
  assert.equal(entry.errors.length, 3);
  assert.deepEqual(entry.errors.map((e) => e.message), ['card declined (0)', 'card declined (1)', 'card declined (2)']);
  assert.equal(entry.lastError.message, 'card declined (2)');
  assert.equal(entry.lastError.name, 'Error');
  assert.match(entry.lastError.stack ?? '', /chargeCard/);
  assert.deepEqual(entry.event.payload, { amount: 5 });
  assert.equal(entry.event.priority, 'critical');
  const stats = bus.getMetrics().retryStats;
  assert.equal(stats.totalRetries, 2);
  assert.equal(stats.deadLetterQueueSize, 1);
  assert.equal(stats.deadLettered, 1);
});

test('retries are per handler: only the failing one runs again', async (t) => {
  const bus = await startedBus(t, fast);
  const calls: string[] = [];
  let flaky = 0;
  bus.registerHandler('order', () => void calls.push('a'));
  bus.registerHandler('order', async function flakyHandler(e: BufferedEvent) {
    calls.push(`b${e.retryCount}`);
    if (flaky++ === 0) throw new Error('transient');
  });
  bus.registerHandler('order', () => void calls.push('c'));
  await bus.emitEvent('order', {});
  await waitFor(() => calls.length === 4, 'the retry');
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.deepEqual(calls.sort(), ['a', 'b0', 'b1', 'c']);
  assert.equal(bus.getDeadLetterQueue().length, 0);
  assert.equal(bus.getMetrics().retryStats.totalRetries, 1);
});

test('waiting retries do not hold the window or block other events', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, retryAttempts: 1, retryDelays: [1000] });
  const handled: number[] = [];
  bus.registerHandler('fails', () => {
    throw new Error('no');
  });
  bus.registerHandler('works', (e: { n: number }) => void handled.push(e.n));
  await bus.emitEvent('fails', {});
  await waitFor(() => bus.getMetrics().retryStats.scheduledRetries === 1, 'the retry to be scheduled');
  for (let n = 0; n < 20; n++) await bus.emitEvent('works', { n });
  await waitFor(() => handled.length === 20, 'the other events');
  assert.equal(bus.getMetrics().retryStats.scheduledRetries, 1, 'still waiting for its backoff');
  assert.equal(bus.getMetrics().queueMetrics.inFlightInvocations, 0);
});

test('non-retryable errors go straight to the dead-letter queue', async (t) => {
  const bus = await startedBus(t, fast);
  let runs = 0;
  bus.registerHandler('a', () => {
    runs++;
    throw new NonRetryableError('bad input');
  });
  bus.registerHandler('b', () => {
    runs++;
    throw Object.assign(new Error('also final'), { retryable: false });
  });
  await bus.emitEvent('a', {});
  await bus.emitEvent('b', {});
  await waitFor(() => bus.getDeadLetterQueue().length === 2, 'two dead letters');
  assert.equal(runs, 2);
  assert.deepEqual(bus.getDeadLetterQueue().map((e) => e.attempts), [1, 1]);
  assert.equal(bus.getMetrics().retryStats.nonRetryable, 2);
});

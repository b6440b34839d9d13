import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BufferedEvent, HandlerTimeoutError } from '..';
import { startedBus, waitFor } from './helpers';

test('a handler that outlives handlerTimeout fails with HANDLER_TIMEOUT and its signal aborts', async (t) => {
  const bus = await startedBus(t, { handlerTimeout: 50, retryAttempts: 1, retryDelays: [100] });
  const signals: AbortSignal[] = [];
  let runs = 0;
  bus.registerHandler('slow', async function slowHandler(e: BufferedEvent) {
    runs++;
    signals.push(e.signal);
    await new Promise((resolve) => setTimeout(resolve, 400));
  });
  await bus.emitEvent('slow', {});
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the timed-out event to be dead-lettered');
  assert.equal(runs, 2, 'a timeout is retried like any failure');
  assert.ok(signals.every((s) => s.aborted));
  assert.ok(signals[0].reason instanceof HandlerTimeoutError);
  assert.equal((signals[0].reason as HandlerTimeoutError).code, 'HANDLER_TIMEOUT');
  assert.notEqual(signals[0], signals[1], 'each attempt has its own signal');
  const [entry] = bus.getDeadLetterQueue();
  assert.ok(entry.errors.every((e) => e.timedOut && /handlerTimeout/.test(e.message)));
  assert.equal(entry.lastError.name, 'HandlerTimeoutError');
});

test('handlers that settle in time are unaffected, and late settlements are ignored', async (t) => {
  const bus = await startedBus(t, { handlerTimeout: 200, retryAttempts: 0 });
  let late = 0;
  bus.registerHandler('quick', async (e: BufferedEvent) => {
    assert.equal(e.signal.aborted, false);
  });
  bus.registerHandler('late', async () => {
    await new Promise((resolve) => setTimeout(resolve, 400));
    late++;
  });
  await bus.emitEvent('quick', {});
  await bus.emitEvent('late', {});
  await waitFor(() => late === 1, 'the late handler to finish anyway');
  const q = bus.getMetrics().queueMetrics;
  assert.equal(q.succeeded, 1);
  assert.equal(q.failed, 1);
  assert.equal(bus.getDeadLetterQueue().length, 1);
});

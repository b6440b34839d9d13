import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startedBus, waitFor, rejectsWithCode } from './helpers';

test('dead letters can be inspected, replayed, removed and cleared', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  let healthy = false;
  const handled: string[] = [];
  bus.registerHandler('sync', async (e: { name: string }) => {
    if (!healthy) throw new Error(`down: ${e.name}`);
    handled.push(e.name);
  });
  for (const name of ['a', 'b', 'c', 'd']) await bus.emitEvent('sync', { name });
  await waitFor(() => bus.getDeadLetterQueue().length === 4, 'four dead letters');
  const [a, b, c] = bus.getDeadLetterQueue();
  assert.deepEqual([a, b, c].map((e) => (e.event.payload as { name: string }).name), ['a', 'b', 'c']);

  assert.equal(bus.removeDeadLetter(b.id), true);
  assert.equal(bus.removeDeadLetter(b.id), false);
  healthy = true;
  assert.equal(bus.replayDeadLetter(a.id), 1);
  await waitFor(() => handled.length === 1, 'the replayed event');
  assert.deepEqual(handled, ['a']);
  assert.equal(bus.getDeadLetterQueue().length, 2, 'a replay that succeeds removes the entry');

  healthy = false;
  assert.equal(bus.replayDeadLetter(), 2);
  await waitFor(() => bus.getDeadLetterQueue().length === 2, 'failing replays to come back');
  assert.deepEqual(bus.getDeadLetterQueue().map((e) => e.attempts), [1, 1], 'replays start with fresh attempts');
  assert.equal(bus.clearDeadLetterQueue(), 2);
  assert.deepEqual(bus.getDeadLetterQueue(), []);
  assert.equal(bus.getMetrics().retryStats.replayed, 3);
  await rejectsWithCode(() => bus.replayDeadLetter(-1), 'INVALID_ARGUMENT', 'id');
  await rejectsWithCode(() => bus.removeDeadLetter(1.5), 'INVALID_ARGUMENT', 'id');
});

test('a full dead-letter queue evicts its oldest entry and counts it', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0, deadLetterQueueSize: 3 });
  bus.registerHandler('x', () => {
    throw new Error('always');
  });
  for (let n = 0; n < 5; n++) await bus.emitEvent('x', { n });
  await waitFor(() => bus.getMetrics().retryStats.deadLettered === 5, 'five failures');
  const kept = bus.getDeadLetterQueue().map((e) => (e.event.payload as { n: number }).n);
  assert.deepEqual(kept, [2, 3, 4]);
  assert.equal(bus.getMetrics().retryStats.deadLetterEvicted, 2);
});

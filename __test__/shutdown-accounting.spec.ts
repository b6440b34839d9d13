import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService } from '..';
import { waitFor } from './helpers';

test('shutdown under load accounts for every emitted event', async () => {
  const bus = new BufferedEventBusService({
    workerCount: 2,
    concurrency: 4,
    retryAttempts: 1,
    retryDelays: [60_000],
  });
  await bus.initialize();
  let handled = 0;
  bus.registerHandler('ok', async () => {
    handled++;
  });
  bus.registerHandler('bad', () => {
    throw Object.assign(new Error('permanent'), { retryable: false });
  });
  bus.registerHandler('flaky', () => {
    throw new Error('retry me later');
  });
  let aborted = 0;
  bus.registerHandler('slow', (e: { signal: AbortSignal }) => new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    e.signal.addEventListener('abort', () => {
      aborted++;
      assert.equal((e.signal.reason as { code?: string }).code, 'SHUTTING_DOWN');
      clearTimeout(timer);
    });
  }));
  const kinds = ['ok', 'ok', 'ok', 'bad', 'flaky', 'ok', 'slow', 'ok'];
  const emitted = 400;
  for (let i = 0; i < emitted; i++) {
    await bus.emitEvent(kinds[i % kinds.length], { i }, { priority: i % 3 === 0 ? 'critical' : i % 3 === 1 ? 'normal' : 'low' });
  }
  await waitFor(() => bus.getMetrics().queueMetrics.inFlight > 0, 'work in flight');
  const report = await bus.shutdown({ timeout: 150 });
  const deadLettered = bus.getDeadLetterQueue().length;
  assert.ok(report.inFlightAborted.length > 0, 'slow handlers were running at the deadline');
  assert.equal(aborted, report.inFlightAborted.length, 'each running handler saw its signal abort');
  assert.ok(report.remaining.length > 0, 'some events never started');
  const retriesPending = report.remaining.filter((e) => e.handler !== undefined);
  assert.ok(retriesPending.every((e) => e.type === 'flaky' && e.retryCount === 1));
  const ids = new Set([...report.remaining, ...report.inFlightAborted].map((e) => e.id));
  assert.equal(ids.size, report.remaining.length + report.inFlightAborted.length, 'no event listed twice');
  assert.equal(
    handled + deadLettered + report.remaining.length + report.inFlightAborted.length,
    emitted,
    `handled ${handled} + dead-lettered ${deadLettered} + remaining ${report.remaining.length} + aborted ${report.inFlightAborted.length}`,
  );
});

test('a handler that first reads event.signal after a forced shutdown sees it aborted', async () => {
  const bus = new BufferedEventBusService({ workerCount: 1 });
  await bus.initialize();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const seen: boolean[] = [];
  const late = async (e: { signal: AbortSignal }) => {
    await gate;
    seen.push(e.signal.aborted);
  };
  bus.registerHandler('one', late);
  // Two handlers: a fan-out delivery rather than a single-handler one.
  bus.registerHandler('two', late);
  bus.registerHandler('two', late);
  await bus.emitEvent('one', {});
  await bus.emitEvent('two', {});
  await waitFor(() => bus.getMetrics().queueMetrics.inFlight === 2, 'both running');
  const report = await bus.shutdown({ timeout: 50 });
  assert.equal(report.inFlightAborted.length, 2);
  release();
  await waitFor(() => seen.length === 3, 'the handlers to look');
  assert.deepEqual(seen, [true, true, true]);
});

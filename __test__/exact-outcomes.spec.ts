// Every emitted event ends in exactly one visible state: handled,
// dead-lettered, unhandled (no handler), refused, or listed by shutdown as
// never started or aborted while running.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService } from '..';
import { blockWindow, rejectsWithCode, startedBus, waitFor } from './helpers';

test('events that reach no handler are counted as unhandled, not as successes', async (t) => {
  const bus = await startedBus(t);
  for (let i = 0; i < 5; i++) await bus.emitEvent('nobody.listens', { i });
  // One removed while it waited.
  const gate = await blockWindow(bus);
  const remove = bus.registerHandler('later.removed', () => {});
  await bus.emitEvent('later.removed', {});
  remove();
  gate();
  await waitFor(() => bus.getMetrics().queueMetrics.unhandled === 6, 'six unhandled events');
  const m = bus.getMetrics();
  assert.equal(m.queueMetrics.succeeded, 1, 'only the blocker succeeded');
  assert.equal(m.queueMetrics.totalProcessed, 1);
  assert.equal(m.retryStats.successRate, 1);
  assert.match(bus.metricsText(), /bootify_events_finished_total\{result="unhandled"\} 6/);
});

test('inline handling honours handlerTimeout and rejects with HANDLER_FAILED on a failure', async (t) => {
  const bus = await startedBus(t, { concurrency: 1, maxQueueSize: 100, fallbackToSync: true });
  const gate = await blockWindow(bus);
  t.after(gate);
  bus.registerHandler('fill', () => {});
  for (let i = 0; i < 100; i++) await bus.emitEvent('fill', { i });
  // Only now, so the blocker (started earlier) keeps the window full.
  await bus.updateConfig({ handlerTimeout: 100 });
  // The queue is full: these run inline.
  bus.registerHandler('hangs', () => new Promise(() => {}));
  await rejectsWithCode(() => bus.emitEvent('hangs', {}), 'HANDLER_FAILED', 'handlerTimeout \\(100 ms\\)');
  bus.registerHandler('throws', () => {
    throw new Error('inline boom');
  });
  const errors: unknown[] = [];
  bus.on('handler_error', (e) => errors.push(e.error));
  await rejectsWithCode(() => bus.emitEvent('throws', {}), 'HANDLER_FAILED', 'inline boom');
  assert.equal(errors.length, 1);
  let ran = false;
  bus.registerHandler('fine', () => {
    ran = true;
  });
  assert.equal(typeof (await bus.emitEvent('fine', {})), 'string');
  assert.ok(ran);
  assert.equal(bus.getMetrics().queueMetrics.handledInline, 3);
});

test('no handler starts after shutdown() resolved, and its lists say exactly what ran', async () => {
  for (let round = 0; round < 5; round++) {
    const bus = new BufferedEventBusService({ workerCount: 2, concurrency: 64 });
    await bus.initialize();
    const started = new Set<string>();
    const finished = new Set<string>();
    bus.registerHandler('work', async (e) => {
      started.add(e.id);
      await new Promise((resolve) => setImmediate(resolve));
      finished.add(e.id);
    });
    const ids: string[] = [];
    for (let i = 0; i < 3000; i++) ids.push(await bus.emitEvent('work', { i }));
    const handledBefore = bus.getMetrics().queueMetrics.totalProcessed;
    const report = await bus.shutdown({ timeout: 0 });
    const startedAtShutdown = started.size;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(started.size, startedAtShutdown, 'no handler started after shutdown resolved');
    for (const e of report.remaining) assert.ok(!started.has(e.id), `remaining ${e.id} never started`);
    for (const e of report.inFlightAborted) assert.ok(started.has(e.id), `aborted ${e.id} had started`);
    const remaining = new Set(report.remaining.map((e) => e.id));
    const aborted = new Set(report.inFlightAborted.map((e) => e.id));
    for (const id of ids) {
      assert.ok(!(remaining.has(id) && aborted.has(id)), `${id} listed once`);
      // Handled (not listed) events ran to the end.
      if (!remaining.has(id) && !aborted.has(id)) assert.ok(finished.has(id), `${id} handled`);
    }
    assert.equal(handledBefore + report.drained + report.remaining.length + report.inFlightAborted.length, ids.length);
  }
});

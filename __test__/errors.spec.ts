import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedEventBusService, BusError } from '..';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

test('an invalid configuration names every offending field', () => {
  try {
    new BufferedEventBusService({
      workerCount: 0,
      maxQueueSize: 10,
      maxEventSize: 100,
      maxMemoryMB: 1,
      retryAttempts: 11,
      retryDelays: [50],
      concurrency: 0,
    });
    assert.fail('expected INVALID_CONFIG');
  } catch (err) {
    assert.ok(err instanceof BusError);
    assert.equal(err.code, 'INVALID_CONFIG');
    for (const field of ['workerCount', 'maxQueueSize', 'maxEventSize', 'maxMemoryMB', 'retryAttempts', 'retryDelays[0]', 'concurrency']) {
      assert.match(err.message, new RegExp(field.replace(/[[\]]/g, '\\$&')));
    }
  }
  assert.throws(() => new BufferedEventBusService({ workerCount: '4' as never }), { code: 'INVALID_CONFIG', message: /workerCount must be an integer/ });
  assert.throws(() => new BufferedEventBusService([] as never), { code: 'INVALID_CONFIG' });
});

test('bad emissions get a code and the bus keeps working', async (t) => {
  const bus = await startedBus(t, { maxEventSize: 1024 });
  const handled: unknown[] = [];
  bus.registerHandler('ok', (e: { n: number }) => {
    handled.push(e.n);
  });
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  const cases: [string, () => Promise<string>, string, string][] = [
    ['missing type', () => bus.emitEvent(undefined as never, {}), 'INVALID_EVENT_TYPE', 'type'],
    ['empty type', () => bus.emitEvent('', {}), 'INVALID_EVENT_TYPE', 'type'],
    ['non-string type', () => bus.emitEvent(42 as never, {}), 'INVALID_EVENT_TYPE', 'type'],
    ['unknown priority', () => bus.emitEvent('ok', {}, { priority: 'urgent' as never }), 'INVALID_PRIORITY', 'urgent'],
    ['undefined payload', () => bus.emitEvent('ok', undefined), 'INVALID_PAYLOAD', 'payload'],
    ['function payload', () => bus.emitEvent('ok', () => 1), 'INVALID_PAYLOAD', 'function'],
    ['function field', () => bus.emitEvent('ok', { cb: () => 1 }), 'INVALID_PAYLOAD', 'payload\\.cb'],
    ['circular payload', () => bus.emitEvent('ok', circular), 'INVALID_PAYLOAD', 'payload\\.self'],
    ['bigint payload', () => bus.emitEvent('ok', { n: 10n }), 'INVALID_PAYLOAD', 'bigint'],
    ['oversize payload', () => bus.emitEvent('ok', { blob: 'x'.repeat(2000) }), 'EVENT_TOO_LARGE', 'maxEventSize'],
    ['non-string correlation id', () => bus.emitEvent('ok', {}, { correlationId: 7 as never }), 'INVALID_ARGUMENT', 'correlationId'],
  ];
  for (const [name, call, code, mentions] of cases) {
    await t.test(name, () => rejectsWithCode(call, code, mentions));
  }
  await bus.emitEvent('ok', { n: 1 });
  await waitFor(() => handled.length === 1, 'the valid event');
  const rejected = bus.getMetrics().queueMetrics.rejected;
  assert.equal(rejected.INVALID_PAYLOAD, 5);
  assert.equal(rejected.EVENT_TOO_LARGE, 1);
  assert.equal(bus.getMetrics().queueMetrics.enqueued, 1);
});

test('scaleWorkers validates its argument', async (t) => {
  const bus = await startedBus(t);
  for (const bad of [0, -1, 1.5, 21, Number.NaN, '2']) {
    await rejectsWithCode(() => bus.scaleWorkers(bad as never), 'INVALID_ARGUMENT', 'between 1 and 20');
  }
  await bus.scaleWorkers(3);
  assert.equal(bus.getWorkerStatistics().totalWorkers, 3);
  assert.equal(bus.getConfig().workerCount, 3);
});

test('registerHandler after shutdown and a non-function handler get codes', async () => {
  const bus = new BufferedEventBusService();
  await bus.initialize();
  await assert.rejects(async () => bus.registerHandler('x', 'not a function' as never), { code: 'INVALID_HANDLER' });
  await bus.shutdown();
  await assert.rejects(async () => bus.registerHandler('x', () => {}), { code: 'SHUTTING_DOWN' });
  await assert.rejects(bus.emitEvent('x', {}), { code: 'SHUTTING_DOWN' });
  await assert.rejects(bus.scaleWorkers(2), { code: 'SHUTTING_DOWN' });
});

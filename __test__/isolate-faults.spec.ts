// Worker isolates that die or hang: the event that killed one is charged
// (retried, then dead-lettered); the others are neither charged nor run
// twice; replacements back off; nothing is lost or miscounted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { BufferedEventBusService, type DeadLetterEntry } from '..';
import { type IsolateReport, listenToIsolates, startedBus, waitFor } from './helpers';

// The raw addon, as the package loads it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const native = require('../js/binding.js') as typeof import('../js/binding');

const handlers = path.join(__dirname, 'fixtures', 'isolate-handlers.js');

function codes(errors: unknown[]): string[] {
  return errors.map((e) => String((e as { code?: unknown }).code));
}

async function settled(bus: BufferedEventBusService, total: number): Promise<void> {
  await waitFor(() => {
    const q = bus.getMetrics().queueMetrics;
    return q.succeeded + q.failed + q.unhandled === total;
  }, `${total} events finished`, 30_000);
}

function onlyOnce(reports: IsolateReport[], expected: number[]): void {
  assert.deepEqual(
    reports.map((r) => r.n).sort((a, b) => (a ?? 0) - (b ?? 0)),
    expected,
    'each innocent event handled exactly once',
  );
  assert.ok(reports.every((r) => r.retryCount === 0), 'no innocent event was charged an attempt');
}

const fastRetries = { retryAttempts: 1, retryDelays: [100], reliabilityLimits: { workerRestartDelay: 20 } };

test('a handler that exits its isolate is charged alone: retried, then dead-lettered', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1, concurrency: 4, ...fastRetries });
  const reports = listenToIsolates(t);
  const errors: unknown[] = [];
  bus.on('worker_error', (err) => errors.push(err));
  await bus.registerWorkerHandler('job', handlers, { exportName: 'poison' });
  for (let n = 0; n < 8; n++) await bus.emitEvent('job', { n, poison: n === 2 });
  await settled(bus, 8);
  onlyOnce(reports, [0, 1, 3, 4, 5, 6, 7]);
  const q = bus.getMetrics().queueMetrics;
  assert.equal(q.succeeded, 7);
  assert.equal(q.failed, 1);
  const letters: DeadLetterEntry[] = bus.getDeadLetterQueue();
  assert.equal(letters.length, 1);
  assert.equal((letters[0].event.payload as { n: number }).n, 2);
  assert.equal(letters[0].attempts, 2, 'each death was one attempt');
  assert.match(letters[0].lastError.message, /isolate .*died.*exited with code 7/);
  assert.deepEqual(codes(errors), ['ISOLATE_DIED', 'ISOLATE_DIED']);
  assert.equal((errors[0] as { details: { charged: number } }).details.charged, 1);
  assert.equal(bus.getMetrics().retryStats.totalRetries, 1);
  const health = await bus.getHealthStatus();
  assert.equal(health.checks.find((c) => c.name === 'isolate_deaths')?.status, 'warn');
  await waitFor(() => bus.getWorkerStatistics().isolates[0]?.state === 'running', 'the replacement');
  assert.equal(bus.getWorkerStatistics().isolates[0].restarts, 2);
});

test('a throw escaping a handler blames that handler, not the ones awaiting beside it', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1, concurrency: 8, ...fastRetries, retryAttempts: 0 });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('job', handlers, { exportName: 'escapes' });
  await Promise.all([0, 1, 2, 3, 4].map((n) => bus.emitEvent('job', { n, poison: n === 1, ms: 200 })));
  await settled(bus, 5);
  onlyOnce(reports, [0, 2, 3, 4]);
  const letters = bus.getDeadLetterQueue();
  assert.equal(letters.length, 1);
  assert.equal((letters[0].event.payload as { n: number }).n, 1);
  assert.match(letters[0].lastError.message, /uncaught Error: escaped from a timer/);
  assert.equal(bus.getMetrics().queueMetrics.succeeded, 4);
});

test('a handler stuck in synchronous code is stopped past its timeout and its isolate replaced', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1, concurrency: 4, handlerTimeout: 300, ...fastRetries, retryAttempts: 0 });
  const reports = listenToIsolates(t);
  const errors: unknown[] = [];
  bus.on('worker_error', (err) => errors.push(err));
  await bus.registerWorkerHandler('job', handlers, { exportName: 'spin' });
  await bus.emitEvent('job', { n: 0, spin: true });
  for (let n = 1; n < 4; n++) await bus.emitEvent('job', { n });
  await settled(bus, 4);
  onlyOnce(reports, [1, 2, 3]);
  const letters = bus.getDeadLetterQueue();
  assert.equal(letters.length, 1);
  assert.equal((letters[0].event.payload as { n: number }).n, 0);
  assert.match(letters[0].lastError.message, /ran past handlerTimeout \(300 ms\)/);
  assert.equal(letters[0].errors[0].timedOut, true);
  assert.deepEqual(codes(errors), ['ISOLATE_DIED']);
  // The replacement works.
  await bus.emitEvent('job', { n: 4 });
  await waitFor(() => reports.length === 4, 'an event after the replacement');
});

test('events queued before their type got a worker handler run in isolates', async (t) => {
  const bus = new BufferedEventBusService({ workerIsolates: 1, workerCount: 1 });
  t.after(() => bus.shutdown({ timeout: 1000 }));
  const reports = listenToIsolates(t);
  const errors: unknown[] = [];
  bus.on('worker_error', (err) => errors.push(err));
  // Queued before initialize(), so before the registration.
  for (let n = 0; n < 5; n++) void bus.emitEvent('late', { n, ms: 1 });
  await bus.registerWorkerHandler('late', handlers, { exportName: 'burn' });
  await bus.initialize();
  for (let n = 5; n < 10; n++) await bus.emitEvent('late', { n, ms: 1 });
  await settled(bus, 10);
  onlyOnce(reports, [...Array(10).keys()]);
  assert.ok(reports.every((r) => r.threadId !== 0), 'handled in an isolate');
  assert.equal(bus.getMetrics().queueMetrics.succeeded, 10);
  assert.deepEqual(errors, []);
  assert.equal(bus.getWorkerStatistics().isolates[0].restarts, 0, 'no isolate crashed');
});

test('a shut-down bus can be garbage-collected, with or without isolates, and so can one never started', () => {
  const script = path.join(__dirname, 'fixtures', 'collect-buses.js');
  const run = spawnSync(process.execPath, ['--expose-gc', script, '20', '2'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const { created, collected } = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { created: number; collected: number };
  assert.equal(created, 27, '20 plain, 2 with isolates, 5 never started');
  // The last bus may still be referenced from the loop's stack frame.
  assert.ok(collected >= created - 1, `${collected} of ${created} buses collected`);
});

test('shared memory must be a SharedArrayBuffer: a detachable ArrayBuffer is refused', () => {
  const config = native.resolveConfig({}, {}, []);
  const words = native.ringWords(config.maxQueueSize, config.concurrency);
  assert.throws(() => new native.NativeBus(config, new Int32Array(words)), /SharedArrayBuffer/);
  assert.throws(() => new native.NativeBus(config, new Uint8Array(words * 4) as unknown as Int32Array), /Int32Array|TypedArray/);
  const ok = new native.NativeBus(config, new Int32Array(new SharedArrayBuffer(words * 4)));
  ok.stop();
});

test("isolates' notifications do not count as the main thread's event-loop lag", async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1 });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('job', handlers, { exportName: 'burn' });
  bus.registerHandler('main', () => {});
  await bus.emitEvent('main', {});
  await bus.getHealthStatus(); // resets the maxima
  // The isolate is notified, then works 800 ms while this thread idles;
  // its completion notifies this thread, which answers at once.
  await bus.emitEvent('job', { n: 0, ms: 800 });
  await waitFor(() => reports.length === 1 && bus.getMetrics().queueMetrics.succeeded === 2, 'the isolate event, in the books');
  const lag = (await bus.getHealthStatus()).checks.find((c) => c.name === 'event_loop_lag');
  assert.ok(lag && lag.value < 500, `lag ${lag?.value} ms is this thread's, not the isolate's`);
});

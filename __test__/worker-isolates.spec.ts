import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { blockWindow, type IsolateReport, listenToIsolates, rejectsWithCode, startedBus, waitFor } from './helpers';

const handlers = path.join(__dirname, 'fixtures', 'isolate-handlers.js');

test('worker handlers run off the main thread while the main loop stays responsive', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 2 });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('burn', handlers, { exportName: 'burn' });
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  for (let n = 0; n < 100; n++) await bus.emitEvent('burn', { n, ms: 5, when: new Date() });
  await waitFor(() => reports.length === 100, 'every event', 30_000);
  delay.disable();
  assert.ok(reports.every((r) => r.threadId !== threadId && r.threadId > 0), 'ran in isolates');
  assert.ok(reports.every((r) => r.isDate), 'structured clone keeps Dates');
  assert.deepEqual(new Set(reports.map((r) => r.n)).size, 100);
  // 500 ms of CPU ran meanwhile; the main loop never waited for it.
  assert.ok(delay.max / 1e6 < 250, `main loop delay ${delay.max / 1e6} ms`);
  const stats = bus.getWorkerStatistics();
  assert.equal(stats.isolates.length, 2);
  assert.equal(stats.isolates.reduce((sum, i) => sum + i.deliveries, 0), 100, JSON.stringify(stats.isolates));
  // Reports leave the isolate before its acknowledgement reaches the books.
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 100, 'the books');
});

test('priorities hold across main-thread and worker handlers', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1, concurrency: 1 });
  const reports = listenToIsolates(t);
  const main: IsolateReport[] = [];
  await bus.registerWorkerHandler('worker', handlers, { exportName: 'burn' });
  bus.registerHandler('main', (e: { label: string }) => void main.push({ label: e.label, threadId, at: performance.timeOrigin + performance.now(), retryCount: 0 }));
  // Start the isolates, then fill the one-place window.
  await bus.emitEvent('worker', { label: 'warm-up' });
  await waitFor(() => reports.length === 1, 'the isolate to start', 30_000);
  const release = await blockWindow(bus);
  const plan: [string, string, 'critical' | 'normal' | 'low'][] = [
    ['worker', 'w-low', 'low'], ['main', 'm-normal', 'normal'], ['worker', 'w-critical', 'critical'],
    ['main', 'm-critical', 'critical'], ['worker', 'w-normal', 'normal'], ['main', 'm-low', 'low'],
  ];
  for (const [type, label, priority] of plan) await bus.emitEvent(type, { label }, { priority });
  release();
  await waitFor(() => reports.length === 4 && main.length === 3, 'every event', 30_000);
  const order = [...reports.slice(1), ...main].sort((a, b) => a.at - b.at).map((r) => r.label);
  assert.deepEqual(order, ['w-critical', 'm-critical', 'm-normal', 'w-normal', 'w-low', 'm-low']);
});

test('worker handler failures are retried and dead-lettered', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 1, retryAttempts: 2, retryDelays: [100, 100] });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('fails', handlers, { exportName: 'fails' });
  await bus.emitEvent('fails', { n: 1 }, { priority: 'critical' });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter', 30_000);
  assert.deepEqual(reports.map((r) => r.retryCount), [0, 1, 2]);
  const [entry] = bus.getDeadLetterQueue();
  assert.equal(entry.attempts, 3);
  assert.equal(entry.handler, 'isolate-handlers.js#fails');
  assert.equal(entry.lastError.message, 'worker failure 1');
  assert.deepEqual(entry.event.payload, { n: 1 });
  assert.equal(bus.getMetrics().retryStats.totalRetries, 2);
  assert.equal(bus.getMetrics().queueMetrics.failed, 1);
});

test('an isolate that crashes is replaced and loses no event', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'isolate-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bus = await startedBus(t, { workerIsolates: 1, concurrency: 1 });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('fragile', handlers, { exportName: 'crashOnce' });
  const marker = path.join(dir, 'crashed');
  for (let n = 0; n < 10; n++) await bus.emitEvent('fragile', { n, marker });
  await waitFor(() => reports.length === 10, 'every event', 30_000);
  assert.deepEqual(reports.map((r) => r.n).sort((a, b) => (a ?? 0) - (b ?? 0)), [...Array(10).keys()]);
  const isolates = bus.getWorkerStatistics().isolates;
  assert.equal(isolates.length, 1);
  assert.equal(isolates[0].restarts, 1, 'the isolate was replaced');
  await waitFor(() => bus.getWorkerStatistics().isolates[0].state === 'running', 'the replacement');
  const health = await bus.getHealthStatus();
  assert.equal(health.checks.find((c) => c.name === 'isolates')?.status, 'pass');
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 10, 'the books');
});

test('a module that cannot load is a clear error at registration', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'isolate-bad-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = path.join(dir, 'broken.js');
  writeFileSync(broken, 'module.exports = function (event) { return event +; };');
  const bus = await startedBus(t);
  await rejectsWithCode(() => bus.registerWorkerHandler('x', broken), 'HANDLER_MODULE_ERROR', 'broken.js');
  await rejectsWithCode(() => bus.registerWorkerHandler('x', path.join(dir, 'missing.js')), 'HANDLER_MODULE_ERROR', 'missing.js');
  await rejectsWithCode(() => bus.registerWorkerHandler('x', handlers, { exportName: 'nope' }), 'HANDLER_MODULE_ERROR', 'nope');
  bus.registerHandler('mixed', () => {});
  await rejectsWithCode(() => bus.registerWorkerHandler('mixed', handlers, { exportName: 'burn' }), 'INVALID_HANDLER', 'main thread');
  await bus.registerWorkerHandler('iso', handlers, { exportName: 'burn' });
  await rejectsWithCode(() => bus.registerHandler('iso', () => {}), 'INVALID_HANDLER', 'isolates');
});

test('shutdown drains worker-bound events; a program without shutdown exits by itself', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 2 });
  const reports = listenToIsolates(t);
  await bus.registerWorkerHandler('burn', handlers, { exportName: 'burn' });
  for (let n = 0; n < 30; n++) void bus.emitEvent('burn', { n, ms: 3 });
  const report = await bus.shutdown({ timeout: 20_000 });
  assert.deepEqual(report.remaining, []);
  assert.deepEqual(report.inFlightAborted, []);
  await waitFor(() => reports.length === 30, 'the reports');

  const r = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'isolate-exit.js')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `did not exit by itself: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /handled 20/);
});

test('an isolate stuck in a long synchronous handler gets no more events while another is free', async (t) => {
  const bus = await startedBus(t, { workerIsolates: 2 });
  const reports = listenToIsolates(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'isolate-hold-'));
  const file = path.join(dir, 'release');
  t.after(() => {
    writeFileSync(file, '');
    rmSync(dir, { recursive: true, force: true });
  });
  await bus.registerWorkerHandler('hold', handlers, { exportName: 'holdUntil' });
  await bus.registerWorkerHandler('burn', handlers, { exportName: 'burn' });
  await bus.emitEvent('burn', { label: 'warm-up' });
  await waitFor(() => reports.length === 1 && bus.getWorkerStatistics().isolates.length === 2, 'both isolates', 30_000);
  await bus.emitEvent('hold', { label: 'hold', file });
  await waitFor(() => reports.some((r) => r.label === 'hold' && r.started), 'the long handler to start', 30_000);
  const held = reports.find((r) => r.label === 'hold')?.threadId;
  // Handed out round robin, half of these would wait behind the held isolate.
  for (let n = 0; n < 6; n++) await bus.emitEvent('burn', { label: 'short', n });
  await waitFor(() => reports.filter((r) => r.label === 'short').length === 6, 'every short event while the other isolate is held', 30_000);
  assert.ok(reports.filter((r) => r.label === 'short').every((r) => r.threadId !== held), 'none ran on the held isolate');
  writeFileSync(file, '');
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 8, 'the held event too', 30_000);
});

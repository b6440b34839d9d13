import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BufferedEvent, testing } from '..';
import { blockWindow, startedBus, waitFor } from './helpers';

test('counters match a known scenario exactly', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 1, retryDelays: [100] });
  const failedOnce = new Set<number>();
  bus.registerHandler('job', (e: BufferedEvent<{ n: number }>) => {
    const n = e.n;
    if (n < 10) throw new Error(`always ${n}`);
    if (n < 60 && !failedOnce.has(n)) {
      failedOnce.add(n);
      throw new Error(`once ${n}`);
    }
  });
  for (let n = 0; n < 1000; n++) void bus.emitEvent('job', { n }, { priority: n % 2 ? 'normal' : 'low' });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 1000, 'every event to finish', 20_000);
  const { queueMetrics: q, retryStats: r } = bus.getMetrics();
  assert.equal(q.enqueued, 1000);
  assert.equal(q.succeeded, 990);
  assert.equal(q.failed, 10);
  assert.equal(q.handlerFailures, 50 + 2 * 10);
  assert.equal(r.totalRetries, 60);
  assert.equal(r.deadLetterQueueSize, 10);
  assert.equal(r.deadLettered, 10);
  assert.equal(r.successRate, 0.99);
  assert.deepEqual(q.deliveries, { dispatched: 1060, succeeded: 990, failed: 70, unhandled: 0 });
  assert.deepEqual(q.byType.job, { handlers: 1, dispatched: 1060, succeeded: 990, failed: 70, retries: 60, deadLettered: 10 });
  assert.equal(q.byPriority.normal.dispatched + q.byPriority.low.dispatched, 1060);
  assert.equal(q.processingTime.count, 1060);
  assert.equal(q.queueWaitTime.count, 1000, 'one queue wait per emitted event');
  const w = bus.getWorkerStatistics();
  const byWorkers = w.workers.reduce((sum, worker) => sum + worker.eventsDispatched, 0);
  assert.equal(byWorkers + w.mainThreadDispatched, 1060, 'every dispatch is counted, by a worker or by the main thread');
  // Rates come from native samples every 100 ms.
  await waitFor(() => bus.getMetrics().queueMetrics.inputRate > 0 && bus.getMetrics().queueMetrics.processingRate > 0, 'rates');
});

test('processing-time percentiles move when handlers get slower', async (t) => {
  const bus = await startedBus(t, { concurrency: 16 });
  let delay = 1;
  bus.registerHandler('work', () => new Promise((resolve) => setTimeout(resolve, delay)));
  for (let i = 0; i < 100; i++) void bus.emitEvent('work', {});
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 100, 'fast events');
  const fast = bus.getMetrics().queueMetrics.processingTime;
  delay = 40;
  for (let i = 0; i < 300; i++) void bus.emitEvent('work', {});
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 400, 'slow events', 20_000);
  const slow = bus.getMetrics().queueMetrics.processingTime;
  assert.ok(fast.p50 < 30, `fast p50 ${fast.p50} ms`);
  assert.ok(slow.p50 >= 38 && slow.p95 >= 38, `slow p50 ${slow.p50}, p95 ${slow.p95} ms`);
  assert.ok(slow.max >= slow.p99 && slow.p99 >= slow.p95 && slow.p95 >= slow.p50);
  assert.ok(bus.getMetrics().queueMetrics.queueWaitTime.p95 > fast.p95, 'slow handlers made events wait');
});

test("processing and queue-wait times are not the emitting code's between awaited emits", async (t) => {
  const bus = await startedBus(t, { concurrency: 16 });
  bus.registerHandler('quick', async () => {});
  for (let i = 0; i < 32; i++) {
    await bus.emitEvent('quick', { i });
    // The caller works 2 ms between two emits, as a request handler does.
    const until = performance.now() + 2;
    while (performance.now() < until) {
      // busy
    }
  }
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 32, 'the events');
  // A window of such emits (32 ms of the caller's work) must not be
  // counted as the handlers' time, nor make the events wait for it.
  const { processingTime, queueWaitTime } = bus.getMetrics().queueMetrics;
  assert.ok(processingTime.p50 < 10, `processing p50 ${processingTime.p50} ms`);
  assert.ok(queueWaitTime.p50 < 10, `queue wait p50 ${queueWaitTime.p50} ms`);
});

test('health turns degraded and unhealthy past the thresholds, and back to healthy', async (t) => {
  const bus = await startedBus(t, {
    concurrency: 1,
    performanceLimits: { maxQueueLatency: 60_000 },
    monitoring: { alertThresholds: { queueDepthWarning: 20, eventLoopLagMs: 200 } },
    reliabilityLimits: { workerRestartDelay: 10 },
  });
  // Maxima are since the previous check, so a quiet check comes back
  // healthy once the condition is gone.
  const becomesHealthy = async (what: string) => {
    let last;
    for (let i = 0; i < 50 && (last = await bus.getHealthStatus()).status !== 'healthy'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(last?.status, 'healthy', `${what}: ${JSON.stringify(last?.alerts)}`);
  };
  bus.registerHandler('x', () => {});
  await becomesHealthy('at start');

  const release = await blockWindow(bus);
  for (let i = 0; i < 30; i++) await bus.emitEvent('x', { i });
  const deep = await bus.getHealthStatus();
  assert.equal(deep.status, 'degraded');
  const depth = deep.alerts.find((a) => a.type === 'queue_depth');
  assert.equal(depth?.value, 30, JSON.stringify({ deep, metrics: bus.getMetrics().queueMetrics.byPriority }));
  assert.equal(depth?.threshold, 20);
  assert.equal(deep.checks.find((c) => c.name === 'queue_depth')?.status, 'warn');
  release();
  await waitFor(() => bus.getMetrics().queueMetrics.size === 0, 'the queue to drain');
  await becomesHealthy('after the drain');

  // Block the main thread while the workers have a batch for it.
  await bus.emitEvent('x', {});
  const start = Date.now();
  void bus.emitEvent('x', {});
  while (Date.now() - start < 400) {
    // busy: the delivery notification waits for this loop
  }
  await waitFor(() => bus.getMetrics().queueMetrics.size === 0 && bus.getMetrics().queueMetrics.inFlight === 0, 'the delivery');
  const lagged = await bus.getHealthStatus();
  assert.equal(lagged.status, 'degraded', JSON.stringify(lagged.alerts));
  const lag = lagged.alerts.find((a) => a.type === 'event_loop_lag');
  assert.ok(lag && lag.value >= 300, `lag alert ${JSON.stringify(lagged.alerts)}`);
  assert.ok(bus.getMetrics().queueMetrics.eventLoopLag.max >= 300);
  await becomesHealthy('after the lag');

  testing.injectWorkerPanic(bus);
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getWorkerStatistics().restarts === 1, 'the panic');
  const broken = await bus.getHealthStatus();
  assert.equal(broken.status, 'unhealthy');
  assert.ok(broken.alerts.some((a) => a.type === 'failed_workers' && a.severity === 'critical'));
  await waitFor(() => bus.getMetrics().queueMetrics.size === 0, 'the requeued event');
  await becomesHealthy('after the panic');
});

test('monitoring emits metrics and health checks on its intervals', async (t) => {
  const bus = await startedBus(t, { monitoring: { metricsInterval: 20, healthCheckInterval: 30 } });
  const seen = { metrics: 0, health: 0 };
  bus.on('metrics', (m) => {
    assert.ok(typeof m.queueMetrics.size === 'number');
    seen.metrics++;
  });
  bus.on('health_check', (h) => {
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(h.status));
    seen.health++;
  });
  await waitFor(() => seen.metrics >= 3 && seen.health >= 2, 'monitoring events');
});

test('scaling up and down under load keeps every event', async (t) => {
  const bus = await startedBus(t, { workerCount: 1, concurrency: 32 });
  const seen = new Map<number, number>();
  bus.registerHandler('e', async (e: BufferedEvent<{ n: number }>) => {
    seen.set(e.n, (seen.get(e.n) ?? 0) + 1);
  });
  const sizes = [4, 2, 8, 1, 3];
  let n = 0;
  for (const size of sizes) {
    for (let i = 0; i < 1000; i++) void bus.emitEvent('e', { n: n++ });
    await bus.scaleWorkers(size);
    assert.equal(bus.getWorkerStatistics().totalWorkers, size);
  }
  await waitFor(() => seen.size === n, 'every event', 20_000);
  assert.ok([...seen.values()].every((c) => c === 1), 'no duplicates');
  const stats = bus.getWorkerStatistics();
  assert.equal(stats.workers.length, 3);
  assert.ok(stats.workers.every((w) => w.id > 0 && (w.state === 'idle' || w.state === 'busy') && w.restarts === 0));
});

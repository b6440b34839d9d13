import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { BufferedEventBusService } from '..';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

test('events emitted before initialize() are delivered after it', async (t) => {
  const bus = new BufferedEventBusService({ workerCount: 1 });
  t.after(() => bus.shutdown());
  const seen: number[] = [];
  bus.registerHandler('early', (e: { n: number }) => {
    seen.push(e.n);
  });
  let initialized = false;
  bus.on('initialized', () => (initialized = true));
  assert.equal(bus.isReady(), false);
  await bus.emitEvent('early', { n: 1 });
  await bus.emitEvent('early', { n: 2 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(seen, [], 'nothing runs before initialize()');
  await bus.initialize();
  assert.ok(bus.isReady() && initialized);
  await waitFor(() => seen.length === 2, 'the early events');
  assert.deepEqual(seen, [1, 2]);
});

test('shutdown() drains queued events, stops intake and is safe to call twice', async (t) => {
  const bus = await startedBus(t, { concurrency: 2 });
  let handled = 0;
  bus.registerHandler('work', async () => {
    await new Promise((resolve) => setTimeout(resolve, 2));
    handled++;
  });
  for (let i = 0; i < 50; i++) await bus.emitEvent('work', { i });
  let shutdownEvent = false;
  bus.on('shutdown', () => (shutdownEvent = true));
  const first = bus.shutdown();
  const second = bus.shutdown();
  await rejectsWithCode(() => bus.emitEvent('work', {}), 'SHUTTING_DOWN');
  const report = await first;
  assert.equal(await second, report);
  assert.equal(handled, 50);
  assert.deepEqual(report.remaining, []);
  assert.deepEqual(report.inFlightAborted, []);
  assert.ok(report.drained > 0 && report.drained <= 50);
  assert.ok(shutdownEvent && !bus.isReady());
  await rejectsWithCode(() => bus.registerHandler('work', () => {}), 'SHUTTING_DOWN');
  await rejectsWithCode(() => bus.initialize(), 'INVALID_STATE', 'create a new one');
});

test('a shutdown deadline reports every event that did not finish', async (t) => {
  const bus = await startedBus(t, { concurrency: 2, workerCount: 1 });
  let handled = 0;
  bus.registerHandler('slow', () => new Promise<void>((resolve) => setTimeout(() => {
    handled++;
    resolve();
  }, 300)));
  const emitted = 20;
  for (let i = 0; i < emitted; i++) await bus.emitEvent('slow', { i }, { priority: i < 10 ? 'low' : 'critical' });
  await waitFor(() => bus.getMetrics().queueMetrics.inFlight === 2, 'two in flight');
  const report = await bus.shutdown({ timeout: 50 });
  assert.equal(report.inFlightAborted.length, 2);
  assert.equal(handled + report.remaining.length + report.inFlightAborted.length, emitted);
  assert.ok(report.remaining.length >= 16);
  const priorities = report.remaining.map((e) => e.priority);
  assert.deepEqual(priorities, [...priorities].sort((a, b) => (a === b ? 0 : a === 'critical' ? -1 : 1)), 'remaining in priority order');
  assert.ok(report.remaining.every((e) => typeof e.payload === 'object' && e.id && e.type === 'slow'));
  await rejectsWithCode(() => bus.shutdown({ timeout: -1 }), 'INVALID_ARGUMENT');
});

function runFixture(name: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const script = path.join(__dirname, 'fixtures', `${name}.js`);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('a program that never calls shutdown() exits by itself once its events are handled', () => {
  const r = runFixture('exit-without-shutdown');
  assert.equal(r.signal, null, `killed by ${r.signal}: the process did not exit by itself`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /handled 500/);
});

test('process.exit() while native workers deliver does not crash', () => {
  for (let run = 0; run < 3; run++) {
    const r = runFixture('process-exit');
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /exiting/);
  }
});

test('a throwing event listener leaves no delivery half done', () => {
  const r = runFixture('throwing-listener');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}'), {
    processed: 20,
    failed: 20,
    remaining: 0,
    aborted: 0,
    uncaught: 20,
  });
});

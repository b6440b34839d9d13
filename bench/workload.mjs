// Runs one workload against one contender in this process and prints one
// JSON line. Usage: node bench/workload.mjs <w1|w4|w1-metrics|w1-als> <contender>
// or node bench/workload.mjs w3 <main|isolates|piscina>

import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { contenders } from './contenders.mjs';

const [workload, name] = process.argv.slice(2);
const make = contenders[name];
if (!make && workload !== 'w3') throw new Error(`unknown contender ${name}`);

const tick = () => new Promise((resolve) => setImmediate(resolve));

function priorityOf(i) {
  const r = i % 10;
  return r === 0 ? 'critical' : r < 8 ? 'normal' : 'low';
}

/** A request-context store like BootifyJS's; `w1-als` emits inside it. */
const requestContext = new AsyncLocalStorage();

async function w1({ pollMetrics = false, inContext = false } = {}) {
  const N = 200_000;
  let handled = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const q = await make({
    concurrency: 1024,
    maxQueueSize: 262_144,
    handler: async () => {},
    onHandled: () => {
      if (++handled === N) done();
    },
  });
  let poller;
  if (pollMetrics) poller = setInterval(() => q.bus.getMetrics(), 1);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const t0 = performance.now();
  const burst = (i) => {
    for (const end = Math.min(i + 1000, N); i < end; i++) {
      q.emit({ userId: `user-${i}`, email: `user${i}@example.com`, n: i }, priorityOf(i));
    }
  };
  for (let i = 0; i < N; i += 1000) {
    if (inContext) requestContext.run(new Map([['requestId', `req-${i}`]]), burst, i);
    else burst(i);
    await tick();
  }
  const accepted = performance.now();
  await finished;
  const t1 = performance.now();
  delay.disable();
  clearInterval(poller);
  await q.close();
  return {
    acceptedPerSec: N / ((accepted - t0) / 1000),
    e2ePerSec: N / ((t1 - t0) / 1000),
    maxDelayMs: delay.max / 1e6,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

async function w4() {
  const LOW = 10_000;
  const CRITICAL = 100;
  const WINDOW = 64;
  const order = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const q = await make({
    concurrency: WINDOW,
    maxQueueSize: 16_384,
    // Busy until the critical events have been emitted: the window is full.
    handler: () => gate.then(() => new Promise((resolve) => setImmediate(resolve))),
    onHandled: (label) => {
      order.push(label);
      if (order.length === LOW + CRITICAL) done();
    },
  });
  for (let i = 0; i < LOW; i++) q.emit({ label: 'low', i }, 'low');
  // Let every queue start its first handlers before the critical events come.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  for (let i = 0; i < CRITICAL; i++) q.emit({ label: 'critical', i }, 'critical');
  release();
  await finished;
  await q.close();
  const positions = order.flatMap((label, i) => (label === 'critical' ? [i + 1] : []));
  return { window: WINDOW, firstCritical: positions[0], lastCritical: positions.at(-1), withinTarget: positions.at(-1) <= WINDOW + CRITICAL };
}

/**
 * W3: 5 000 events whose handler burns ~0.2 ms of CPU, on the main thread,
 * in this bus's worker isolates, or in piscina. Reports end-to-end time and
 * the main thread's largest event-loop delay.
 */
async function w3(mode) {
  const N = 5000;
  const { default: burn } = await import('./burn-handler.cjs');
  const handlerPath = fileURLToPath(new URL('./burn-handler.cjs', import.meta.url));
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let finished;
  let emit;
  let close;
  if (mode === 'piscina') {
    const { Piscina } = await import('piscina');
    const pool = new Piscina({ filename: handlerPath, minThreads: 2, maxThreads: 2 });
    let done = 0;
    let resolve;
    finished = new Promise((r) => (resolve = r));
    emit = (task) => pool.run(task).then(() => {
      if (++done === N) resolve();
    });
    close = () => pool.destroy();
  } else {
    const require = createRequire(import.meta.url);
    const { BufferedEventBusService } = require('../dist/index.js');
    const bus = new BufferedEventBusService({ workerIsolates: 2, maxQueueSize: 16_384, fallbackToSync: false, monitoring: { enabled: false } });
    await bus.initialize();
    let done = 0;
    let resolve;
    finished = new Promise((r) => (resolve = r));
    if (mode === 'isolates') {
      await bus.registerWorkerHandler('w3', handlerPath, { exportName: 'burn' });
      // Isolates start on the first event: start them before measuring, as
      // piscina starts its threads in its constructor.
      await bus.emitEvent('w3', { n: -1 });
      while (bus.getMetrics().queueMetrics.totalProcessed < 1) await new Promise((r) => setTimeout(r, 5));
      const poll = setInterval(() => {
        if (bus.getMetrics().queueMetrics.totalProcessed === N + 1) {
          clearInterval(poll);
          resolve();
        }
      }, 1);
    } else {
      bus.registerHandler('w3', (e) => {
        burn(e);
        if (++done === N) resolve();
      });
    }
    emit = (payload) => bus.emitEvent('w3', payload);
    close = () => bus.shutdown();
  }
  delay.enable();
  const t0 = performance.now();
  for (let i = 0; i < N; ) {
    for (const end = Math.min(i + 1000, N); i < end; i++) emit({ n: i });
    await tick();
  }
  await finished;
  const ms = performance.now() - t0;
  delay.disable();
  await close();
  return { endToEndMs: ms, maxDelayMs: delay.max / 1e6 };
}

const result =
  workload === 'w4'
    ? await w4()
    : workload === 'w3'
      ? await w3(name)
      : await w1({ pollMetrics: workload === 'w1-metrics', inContext: workload === 'w1-als' });
console.log(JSON.stringify(result));

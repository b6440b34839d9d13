// Runs one workload against one contender in this process and prints one
// JSON line. Usage: node bench/workload.mjs <w1|w1-metrics|w1-als> <contender>
// [--concurrency N] [--awaited], node bench/workload.mjs w2 <contender> [--rate N] [--single],
// node bench/workload.mjs w4 <contender>, or node bench/workload.mjs w3|w3-skewed <main|isolates|piscina>

import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { contenders } from './contenders.mjs';

const [workload, name] = process.argv.slice(2);
const make = contenders[name];
if (!make && !workload.startsWith('w3')) throw new Error(`unknown contender ${name}`);

const tick = () => new Promise((resolve) => setImmediate(resolve));

function priorityOf(i) {
  const r = i % 10;
  return r === 0 ? 'critical' : r < 8 ? 'normal' : 'low';
}

/** A request-context store like BootifyJS's; `w1-als` emits inside it. */
const requestContext = new AsyncLocalStorage();

/** CPU time (ns) of this process's main thread so far: utime + stime of /proc/self/task/<pid>/stat. */
function mainThreadCpuNs() {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Clock ticks (USER_HZ, 100 on Linux): 10 ms resolution, so runs last long enough to make it small.
  return (Number(fields[11]) + Number(fields[12])) * 1e7;
}

const processCpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/**
 * W1: 200 000 events in bursts of 1000, then setImmediate. `awaited`
 * awaits every emit, as the seed and BootifyJS write it.
 */
async function w1({ pollMetrics = false, inContext = false, concurrency = 1024, awaited = false } = {}) {
  const N = 200_000;
  let handled = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const q = await make({
    concurrency,
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
  const main0 = mainThreadCpuNs();
  const cpu0 = processCpuNs();
  const t0 = performance.now();
  const burst = (i) => {
    for (const end = Math.min(i + 1000, N); i < end; i++) {
      q.emit({ userId: `user-${i}`, email: `user${i}@example.com`, n: i }, priorityOf(i));
    }
  };
  const awaitedBurst = async (i) => {
    for (const end = Math.min(i + 1000, N); i < end; i++) {
      await q.emit({ userId: `user-${i}`, email: `user${i}@example.com`, n: i }, priorityOf(i));
    }
  };
  for (let i = 0; i < N; i += 1000) {
    const run = awaited ? awaitedBurst : burst;
    if (inContext) await requestContext.run(new Map([['requestId', `req-${i}`]]), run, i);
    else await run(i);
    await tick();
  }
  const accepted = performance.now();
  await finished;
  const t1 = performance.now();
  const mainNs = mainThreadCpuNs() - main0;
  const totalNs = processCpuNs() - cpu0;
  delay.disable();
  clearInterval(poller);
  await q.close();
  return {
    acceptedPerSec: N / ((accepted - t0) / 1000),
    e2ePerSec: N / ((t1 - t0) / 1000),
    mainCpuNsPerEvent: mainNs / N,
    totalCpuNsPerEvent: totalNs / N,
    maxDelayMs: delay.max / 1e6,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
}

/**
 * W2: an open-loop producer at `rate` events/s for 2 s; each payload carries
 * its emit time, the handler records when it started. Each setTimeout tick
 * (about one per millisecond) emits what is due, or with `single` each
 * setImmediate tick emits at most one event, so no event waits for others
 * emitted after it in the same synchronous run.
 */
async function w2({ rate = 20_000, seconds = 2, single = false } = {}) {
  const N = rate * seconds;
  const latencies = new Float64Array(N);
  let handled = 0;
  let started = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const q = await make({
    concurrency: 16,
    maxQueueSize: 262_144,
    handler: async (payload) => {
      latencies[started++ % N] = performance.now() - (payload.payload ?? payload).at;
    },
    onHandled: () => {
      if (++handled === N) done();
    },
  });
  // Warm up: let each queue start its threads and compile its paths.
  for (let i = 0; i < 2000; i++) await q.emit({ at: performance.now(), i }, 'normal');
  await new Promise((r) => setTimeout(r, 200));
  handled = 0;
  started = 0;
  const t0 = performance.now();
  let emitted = 0;
  await new Promise((resolve) => {
    const step = () => {
      const due = Math.min(N, Math.floor(((performance.now() - t0) * rate) / 1000));
      while (emitted < due) {
        q.emit({ at: performance.now(), i: emitted++ }, priorityOf(emitted));
        if (single) break;
      }
      if (emitted >= N) resolve();
      else if (single) setImmediate(step);
      else setTimeout(step, 1);
    };
    step();
  });
  await finished;
  await q.close();
  latencies.sort();
  const at = (p) => latencies[Math.min(N - 1, Math.floor(N * p))];
  return { rate, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latencies[N - 1] };
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
async function w3(mode, skewed = false) {
  // Skewed: 20 events alternating 100 ms and 1 ms of CPU, so an isolate
  // handed events round robin gets every long one (about 1 000 ms) where
  // two isolates sharing them by load need about 505 ms.
  const N = skewed ? 20 : 5000;
  const work = (i) => (skewed ? { n: i, ms: i % 2 === 0 ? 100 : 1 } : { n: i });
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
    for (const end = Math.min(i + 1000, N); i < end; i++) emit(work(i));
    await tick();
  }
  await finished;
  const ms = performance.now() - t0;
  delay.disable();
  await close();
  return { endToEndMs: ms, maxDelayMs: delay.max / 1e6 };
}

const flag = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const result =
  workload === 'w4'
    ? await w4()
    : workload === 'w3' || workload === 'w3-skewed'
      ? await w3(name, workload === 'w3-skewed')
      : workload === 'w2'
        ? await w2({ rate: flag('rate', 20_000), single: process.argv.includes('--single') })
        : await w1({
            pollMetrics: workload === 'w1-metrics',
            inContext: workload === 'w1-als',
            awaited: process.argv.includes('--awaited'),
            concurrency: flag('concurrency', 1024),
          });
console.log(JSON.stringify(result));

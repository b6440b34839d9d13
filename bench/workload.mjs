// Runs one workload against one contender in this process and prints one
// JSON line. Usage: node bench/workload.mjs <w1|w4|w1-metrics> <contender>

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { contenders } from './contenders.mjs';

const [workload, name] = process.argv.slice(2);
const make = contenders[name];
if (!make) throw new Error(`unknown contender ${name}`);

const tick = () => new Promise((resolve) => setImmediate(resolve));

function priorityOf(i) {
  const r = i % 10;
  return r === 0 ? 'critical' : r < 8 ? 'normal' : 'low';
}

async function w1({ pollMetrics = false } = {}) {
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
  for (let i = 0; i < N; ) {
    for (const end = Math.min(i + 1000, N); i < end; i++) {
      q.emit({ userId: `user-${i}`, email: `user${i}@example.com`, n: i }, priorityOf(i));
    }
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

const result = workload === 'w4' ? await w4() : await w1({ pollMetrics: workload === 'w1-metrics' });
console.log(JSON.stringify(result));

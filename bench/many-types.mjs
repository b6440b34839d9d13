// How per-type state scales: N distinct event types, one handler and one
// event each, then the cost of reading metrics and health.
// Usage: node --expose-gc bench/many-types.mjs [N]
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { BufferedEventBusService } = require('../dist/index.js');

const N = Number(process.argv[2]) || 100_000;
const bus = new BufferedEventBusService({ monitoring: { enabled: false } });
await bus.initialize();
const rss = () => process.memoryUsage().rss / 1e6;
const r0 = rss();
for (let i = 0; i < N; i++) bus.registerHandler(`t${i}`, () => {});
const r1 = rss();
for (let i = 0; i < N; i++) await bus.emitEvent(`t${i}`, { i });
while (bus.getMetrics().queueMetrics.succeeded < N) await new Promise((resolve) => setTimeout(resolve, 10));
globalThis.gc?.();
const r2 = rss();
const time = async (fn) => {
  const t = performance.now();
  await fn();
  return Number((performance.now() - t).toFixed(1));
};
console.log(
  JSON.stringify({
    types: N,
    registerMB: Number((r1 - r0).toFixed(0)),
    emitMB: Number((r2 - r1).toFixed(0)),
    getMetricsMs: await time(() => bus.getMetrics()),
    healthMs: await time(() => bus.getHealthStatus()),
    prometheusMs: await time(() => bus.metricsText()),
  }),
);
await bus.shutdown();

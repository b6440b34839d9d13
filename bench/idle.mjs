// What an idle bus costs: over a quiet interval after initialize() and a
// few events, the process's CPU time and, per thread, how often it woke
// (context switches: a parked thread that never wakes costs nothing) and
// its CPU; and how many threads the bus added.
// Usage: node bench/idle.mjs [seconds=10] [workerCount=4] [monitoring=on|off|none]
// (none: no bus at all, what Node alone costs over the same interval).
// (monitoring on is the default config: a 'metrics' tick every second and
// a health check every 5 s, on the main thread).
// Linux only (reads /proc/self/task/*/{stat,status}).

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { BufferedEventBusService } = require('../dist/index.js');

const seconds = Number(process.argv[2] ?? 10);
const workerCount = Number(process.argv[3] ?? 4);
const monitoring = process.argv[4] !== 'off';
const tick = 100; // clock ticks per second (USER_HZ), the kernel's fixed unit for /proc

/** Per thread (`tid name`): CPU (utime + stime, clock ticks) and context switches. */
function threads() {
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      const switches = [...status.matchAll(/ctxt_switches:\s+(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      out.set(`${tid} ${name}`, { ticks: Number(fields[11]) + Number(fields[12]), switches });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

const before = readdirSync('/proc/self/task').length;
let bus;
if (process.argv[4] !== 'none') {
  bus = new BufferedEventBusService({ workerCount, monitoring: { enabled: monitoring } });
  await bus.initialize();
  bus.registerHandler('warm', () => {});
  for (let i = 0; i < 1000; i++) await bus.emitEvent('warm', { i });
  while (bus.getMetrics().queueMetrics.totalProcessed < 1000) await new Promise((r) => setTimeout(r, 10));
}
await new Promise((r) => setTimeout(r, 1000));

const start = threads();
const cpu0 = process.cpuUsage();
await new Promise((r) => setTimeout(r, seconds * 1000));
const cpu = process.cpuUsage(cpu0);
const end = threads();

const busy = [...end]
  .map(([t, now]) => {
    const was = start.get(t) ?? now;
    return [t, { wakes: now.switches - was.switches, cpuMs: ((now.ticks - was.ticks) * 1000) / tick }];
  })
  .filter(([, d]) => d.wakes > 0 || d.cpuMs > 0);
console.log(
  JSON.stringify({
    seconds,
    workerCount,
    monitoring: bus === undefined ? 'no bus' : monitoring,
    threadsAdded: readdirSync('/proc/self/task').length - before,
    processCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    bootifyThreadWakes: busy.filter(([t]) => /bootify/.test(t)).reduce((n, [, d]) => n + d.wakes, 0),
    busyThreads: Object.fromEntries(busy),
  }),
);
await bus?.shutdown();

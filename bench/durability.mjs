// Durable buses side by side: the same awaited load on 'memory',
// 'process' and 'fsync', then recovery time for a journal of pending
// events. Each measurement runs in a fresh process; W1 runs `RUNS` times
// and the median is printed.
//
//   node bench/durability.mjs [events] [runs]
//
// W1 awaited: 16 producers, each awaiting every emitEvent; a handler that
// returns at once. Reported: events/s end to end (first emit to last
// handler), emit latency p50/p99 (call to resolution), journal bytes per
// event. Recovery: a journal holding N unfinished events; initialize()
// with a handler registered (replay, decode into slots, hand to the
// engine), and the time until all N have run.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = fileURLToPath(import.meta.url);
const [mode, ...args] = process.argv.slice(2);

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** A started bus and a promise of all `events` handled. */
async function startBus(durability, events, dir) {
  const { BufferedEventBusService } = require('..');
  const bus = new BufferedEventBusService({
    durability,
    journal: { dir },
    maxQueueSize: 100_000,
    monitoring: { enabled: false, healthMonitoring: false },
  });
  let handled = 0;
  let done;
  const all = new Promise((resolve) => (done = resolve));
  bus.registerHandler('w1', () => {
    if (++handled === events) done();
  });
  await bus.initialize();
  return { bus, all };
}

/** W1 fire-and-forget: bursts of 1000 emissions, none awaited, then setImmediate. */
async function burst(durability, events, dir) {
  const { bus, all } = await startBus(durability, events, dir);
  const started = process.hrtime.bigint();
  for (let i = 0; i < events; ) {
    for (const end = Math.min(events, i + 1000); i < end; i++) void bus.emitEvent('w1', { i, user: 'u-1', amount: 42 });
    await new Promise((r) => setImmediate(r));
  }
  await all;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const journal = bus.getMetrics().journal;
  await bus.shutdown();
  return { rate: events / seconds, bytesPerEvent: journal ? journal.bytesWritten / events : 0 };
}

async function w1(durability, events, dir, producers = 16) {
  const { bus, all } = await startBus(durability, events, dir);
  const latencies = new Float64Array(events);
  let next = 0;
  const started = process.hrtime.bigint();
  const producer = async () => {
    while (next < events) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      await bus.emitEvent('w1', { i, user: 'u-1', amount: 42 });
      latencies[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
  };
  await Promise.all(Array.from({ length: producers }, producer));
  await all;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const journal = bus.getMetrics().journal;
  await bus.shutdown();
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    rate: events / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    bytesPerEvent: journal ? journal.bytesWritten / events : 0,
    fsyncs: journal?.fsyncs.count ?? 0,
    syncP50: journal?.fsyncs.p50 ?? 0,
  };
}

/** Leaves `events` unfinished events in the journal at `dir`. */
async function fill(events, dir) {
  const { BufferedEventBusService } = require('..');
  const bus = new BufferedEventBusService({
    durability: 'process',
    journal: { dir, maxDiskMB: 4096 },
    maxQueueSize: events + 100,
    maxMemoryMB: 4096,
    concurrency: 1,
    fallbackToSync: false,
    monitoring: { enabled: false, healthMonitoring: false },
  });
  bus.registerHandler('pending', () => new Promise(() => {}));
  await bus.initialize();
  const batch = [];
  for (let i = 0; i < events; i++) {
    batch.push(bus.emitEvent('pending', { i, user: 'u-1', amount: 42 }));
    if (batch.length === 10_000) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  await bus.shutdown({ timeout: 0 });
}

async function recover(events, dir) {
  const { BufferedEventBusService } = require('..');
  const bus = new BufferedEventBusService({
    durability: 'process',
    journal: { dir, maxDiskMB: 4096 },
    maxQueueSize: 100,
    monitoring: { enabled: false, healthMonitoring: false },
  });
  let handled = 0;
  let done;
  const all = new Promise((resolve) => (done = resolve));
  bus.registerHandler('pending', () => {
    if (++handled === events) done();
  });
  const t0 = process.hrtime.bigint();
  await bus.initialize();
  const opened = Number(process.hrtime.bigint() - t0) / 1e6;
  await all;
  const ran = Number(process.hrtime.bigint() - t0) / 1e6;
  const recovered = bus.getMetrics().journal.recovered;
  await bus.shutdown();
  return { opened, ran, recovered };
}

function child(...argv) {
  const r = spawnSync(process.execPath, [here, ...argv.map(String)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function withDir(fn) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bfy-bench-journal-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const [events = 200_000, runs = 5] = process.argv.slice(2).map(Number);
  console.log(`W1 awaited, 16 producers, ${events} events, median of ${runs} runs`);
  console.log('| durability | events/s | emit p50 µs | emit p99 µs | journal bytes/event | syncs |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const results = {};
  for (const durability of ['memory', 'process', 'fsync']) results[durability] = [];
  for (let r = 0; r < runs; r++) {
    // Interleaved, so drift on the machine hits every mode alike.
    for (const durability of Object.keys(results)) {
      results[durability].push(withDir((dir) => child('w1', durability, events, dir)));
    }
  }
  for (const [durability, rs] of Object.entries(results)) {
    const m = (k) => median(rs.map((x) => x[k]));
    console.log(
      `| ${durability} | ${Math.round(m('rate')).toLocaleString('en')} | ${m('p50').toFixed(1)} | ${m('p99').toFixed(1)} | ${m('bytesPerEvent').toFixed(0)} | ${Math.round(m('fsyncs'))} |`,
    );
  }
  console.log('\nfsync, awaited, by producers (each waits for its own sync), median of 3');
  console.log('| producers | events/s | emit p50 µs | events per sync |');
  console.log('| ---: | ---: | ---: | ---: |');
  for (const producers of [16, 64, 256]) {
    const rs = [0, 1, 2].map(() => withDir((dir) => child('w1', 'fsync', events, dir, producers)));
    console.log(`| ${producers} | ${Math.round(median(rs.map((x) => x.rate))).toLocaleString('en')} | ${median(rs.map((x) => x.p50)).toFixed(0)} | ${(events / median(rs.map((x) => x.fsyncs))).toFixed(1)} |`);
  }
  console.log(`\nW1 fire-and-forget (bursts of 1000, then setImmediate), ${events} events, median of ${runs} runs`);
  console.log('| durability | events/s | journal bytes/event |');
  console.log('| --- | ---: | ---: |');
  const bursts = { memory: [], process: [], fsync: [] };
  for (let r = 0; r < runs; r++) {
    for (const durability of Object.keys(bursts)) bursts[durability].push(withDir((dir) => child('burst', durability, events, dir)));
  }
  for (const [durability, rs] of Object.entries(bursts)) {
    console.log(`| ${durability} | ${Math.round(median(rs.map((x) => x.rate))).toLocaleString('en')} | ${median(rs.map((x) => x.bytesPerEvent)).toFixed(0)} |`);
  }
  console.log('\nRecovery of a journal of unfinished events (fresh process, median of 3)');
  console.log('| pending | initialize() ms | all handled ms |');
  console.log('| ---: | ---: | ---: |');
  for (const pending of [100_000, 1_000_000]) {
    const rs = withDir((dir) => {
      child('fill', pending, dir);
      return [0, 1, 2].map(() => {
        const r = child('recover', pending, dir);
        if (r.recovered !== pending) throw new Error(`recovered ${r.recovered} of ${pending}`);
        // Recovering ran them all: leave the journal as it was for the next run.
        rmSync(dir, { recursive: true, force: true });
        child('fill', pending, dir);
        return r;
      });
    });
    console.log(`| ${pending.toLocaleString('en')} | ${median(rs.map((r) => r.opened)).toFixed(0)} | ${median(rs.map((r) => r.ran)).toFixed(0)} |`);
  }
}

const modes = {
  w1: () => w1(args[0], Number(args[1]), args[2], Number(args[3] ?? 16)),
  burst: () => burst(args[0], Number(args[1]), args[2]),
  fill: () => fill(Number(args[0]), args[1]),
  recover: () => recover(Number(args[0]), args[1]),
};

if (mode in modes) {
  modes[mode]().then((r) => {
    console.log(JSON.stringify(r ?? {}));
    process.exit(0);
  });
} else {
  await main();
}

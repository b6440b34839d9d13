// npm run bench: W1 (throughput, fire-and-forget and awaited, windows 16 and
// 1024, with CPU per event), W2 (latency under an open-loop producer), idle
// cost, W3 (CPU-heavy handlers) and W4 (priority under load) for this bus and
// its peers, each run in a fresh process, repeated and reported as medians.
// Usage: node bench/run.mjs [--runs N] [--only native,fastq,pqueue]

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 5;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined;
const names = ['native', 'eventemitter', 'fastq', 'pqueue'].filter((n) => !only || only.includes(n));
const labels = { native: 'this bus', eventemitter: 'node:events', fastq: 'fastq', pqueue: 'p-queue' };
const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const workload = here('./workload.mjs');

function run(kind, name, ...flags) {
  const out = execFileSync(process.execPath, [workload, kind, name, ...flags], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** Medians, field by field, of `runs` results of each case, the cases interleaved run by run. */
function interleaved(cases) {
  const results = cases.map(() => []);
  for (let i = 0; i < runs; i++) cases.forEach((c, k) => results[k].push(c()));
  return results.map((rs) => Object.fromEntries(Object.keys(rs[0]).map((k) => [k, median(rs.map((r) => r[k]))])));
}

const fmt = (n, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const verdict = (ok) => (ok ? 'met' : 'NOT met');

console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model}), median of ${runs} interleaved runs\n`);

// W1 in both emit styles at both window sizes. node:events has no window.
const w1Cases = [];
for (const awaited of [false, true]) {
  for (const concurrency of [16, 1024]) {
    for (const name of names) {
      if (name === 'eventemitter' && concurrency !== 16) continue;
      const flags = ['--concurrency', String(concurrency), ...(awaited ? ['--awaited'] : [])];
      w1Cases.push({ name, concurrency, awaited, go: () => run('w1', name, ...flags) });
    }
  }
}
const w1Results = interleaved(w1Cases.map((c) => c.go));
const w1 = (name, concurrency, awaited) =>
  w1Results[w1Cases.findIndex((c) => c.name === name && c.awaited === awaited && (name === 'eventemitter' || c.concurrency === concurrency))];

console.log('W1: 200 000 events, {userId, email, n}, 10 % critical / 70 % normal / 20 % low, trivial async handler,');
console.log('    bursts of 1000 then setImmediate. "awaited" awaits what each emit returns: this bus its acceptance,');
console.log("    fastq's push and p-queue's add the task's completion, node:events nothing (a boolean).");
console.log('| emits | window | queue | end-to-end/s | this bus ÷ it | main-thread CPU/event | total CPU/event | max loop delay | peak RSS |');
console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const c of w1Cases) {
  const r = w1(c.name, c.concurrency, c.awaited);
  const own = w1('native', c.concurrency, c.awaited);
  const ratio = own ? `${fmt(own.e2ePerSec / r.e2ePerSec, 2)}×` : '';
  const window = c.name === 'eventemitter' ? '–' : c.concurrency;
  console.log(
    `| ${c.awaited ? 'awaited' : 'fire-and-forget'} | ${window} | ${labels[c.name]} | ${fmt(r.e2ePerSec)} | ${ratio} | ` +
      `${fmt(r.mainCpuNsPerEvent)} ns | ${fmt(r.totalCpuNsPerEvent)} ns | ${fmt(r.maxDelayMs, 1)} ms | ${fmt(r.peakRssMB)} MB |`,
  );
}
if (names.includes('native') && names.includes('fastq') && names.includes('pqueue')) {
  const ratio = (a, b) => a.e2ePerSec / b.e2ePerSec;
  const awaited16 = w1('native', 16, true);
  console.log('\nTargets (issue #12):');
  const lines = [
    ['awaited ÷ p-queue awaited, window 16 (≥ 2×)', ratio(awaited16, w1('pqueue', 16, true)), (x) => x >= 2],
    ['awaited ÷ own fire-and-forget, window 16 (≥ 0.9×)', ratio(awaited16, w1('native', 16, false)), (x) => x >= 0.9],
    ['fire-and-forget ÷ fastq, window 16 (≥ 1.0×)', ratio(w1('native', 16, false), w1('fastq', 16, false)), (x) => x >= 1],
    ['fire-and-forget ÷ fastq, window 1024 (≥ 1.0×)', ratio(w1('native', 1024, false), w1('fastq', 1024, false)), (x) => x >= 1],
    [
      "main-thread CPU/event ÷ fastq's, fire-and-forget, window 16 (≤ 1.5×)",
      w1('native', 16, false).mainCpuNsPerEvent / w1('fastq', 16, false).mainCpuNsPerEvent,
      (x) => x <= 1.5,
    ],
  ];
  for (const [what, x, ok] of lines) console.log(`- ${what}: ${fmt(x, 2)}×, ${verdict(ok(x))}`);
}

{
  const styles = [
    ['what is due, each 1 ms timer tick (runs of ~20)', []],
    ['one event per setImmediate tick', ['--single']],
  ];
  const w2 = interleaved(styles.flatMap(([, flags]) => names.map((name) => () => run('w2', name, ...flags))));
  console.log('\nW2: open-loop producer at 20 000 events/s for 2 s (window 16), emit → handler start');
  console.log('| producer emits | queue | p50 | p99 | max |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  styles.forEach(([style], k) => {
    names.forEach((name, i) => {
      const r = w2[k * names.length + i];
      console.log(`| ${style} | ${labels[name]} | ${fmt(r.p50Ms * 1000, 1)} µs | ${fmt(r.p99Ms * 1000, 1)} µs | ${fmt(r.maxMs, 2)} ms |`);
    });
    const own = w2[k * names.length + names.indexOf('native')];
    if (own) console.log(`| | targets (this bus) | | p99 ≤ 0.25 ms: ${verdict(own.p99Ms <= 0.25)} | max ≤ 2 ms: ${verdict(own.maxMs <= 2)} |`);
  });
}

if (names.includes('native')) {
  const idle = (mode) => JSON.parse(execFileSync(process.execPath, [here('./idle.mjs'), '10', '4', mode], { encoding: 'utf8' }).trim().split('\n').at(-1));
  const [bus, alone] = [idle('on'), idle('none')];
  console.log('\nIdle: an initialized bus (4 native workers, monitoring on) doing nothing for 10 s (bench/idle.mjs)');
  console.log(
    `process CPU ${bus.processCpuMs} ms (Node without a bus: ${alone.processCpuMs} ms), native threads woken ${bus.bootifyThreadWakes} times, ` +
      `threads added ${bus.threadsAdded}`,
  );
}

if (names.includes('native')) {
  // Interleaved, so both see the same machine conditions.
  const plain = [];
  const polled = [];
  for (let i = 0; i < runs; i++) {
    plain.push(run('w1', 'native').e2ePerSec);
    polled.push(run('w1-metrics', 'native').e2ePerSec);
  }
  const a = median(plain);
  const b = median(polled);
  console.log(`\nW1 with getMetrics() every 1 ms: ${fmt(b)} events/s end-to-end vs ${fmt(a)} without (${fmt((b / a) * 100, 1)} %)`);
}

if (names.includes('native')) {
  // Interleaved: propagateContext on and off, emitting outside and inside an
  // AsyncLocalStorage store (one store per burst of 1000, like a request).
  const cases = [
    ['w1', 'native'],
    ['w1', 'nativeNoContext'],
    ['w1-als', 'native'],
    ['w1-als', 'nativeNoContext'],
  ];
  const rates = cases.map(() => []);
  for (let i = 0; i < runs; i++) cases.forEach(([kind, name], k) => rates[k].push(run(kind, name).e2ePerSec));
  const [on, off, alsOn, alsOff] = rates.map(median);
  const nsPerEvent = (a, b) => fmt(1e9 / a - 1e9 / b);
  console.log('\nContext propagation (W1, interleaved, median of runs)');
  console.log('| producer | propagateContext on | off | cost per event |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| no AsyncLocalStorage in use | ${fmt(on)}/s | ${fmt(off)}/s | ${nsPerEvent(on, off)} ns |`);
  console.log(`| emits inside AsyncLocalStorage.run | ${fmt(alsOn)}/s | ${fmt(alsOff)}/s | ${nsPerEvent(alsOn, alsOff)} ns |`);
}

{
  const modes = { main: 'this bus, main-thread handler', isolates: 'this bus, worker isolates (2)', piscina: 'piscina (2 threads)' };
  console.log(`\nW3: 5 000 events, handler burns ~0.2 ms of CPU (median of ${runs})`);
  console.log('| handlers | end-to-end | max main-thread event-loop delay |');
  console.log('| --- | ---: | ---: |');
  for (const [mode, label] of Object.entries(modes)) {
    const results = Array.from({ length: runs }, () => run('w3', mode));
    console.log(`| ${label} | ${fmt(median(results.map((r) => r.endToEndMs)))} ms | ${fmt(median(results.map((r) => r.maxDelayMs)), 1)} ms |`);
  }
}

{
  const modes = { isolates: 'this bus, worker isolates (2)', piscina: 'piscina (2 threads)' };
  console.log(`\nW3 skewed: 20 events alternating 100 ms / 1 ms of CPU on 2 threads (ideal ≈ 505 ms; round robin ≈ 1 000 ms; median of ${runs})`);
  console.log('| handlers | end-to-end |');
  console.log('| --- | ---: |');
  for (const [mode, label] of Object.entries(modes)) {
    const results = Array.from({ length: runs }, () => run('w3-skewed', mode));
    console.log(`| ${label} | ${fmt(median(results.map((r) => r.endToEndMs)))} ms |`);
  }
}

console.log('\nW4: 10 000 low events, then 100 critical while every handler is busy (window 64)');
console.log('| queue | first critical handled at | last critical handled at | within window + 100 |');
console.log('| --- | ---: | ---: | :---: |');
for (const name of names) {
  const r = run('w4', name);
  console.log(`| ${labels[name]} | ${r.firstCritical} | ${r.lastCritical} | ${r.withinTarget ? 'yes' : 'no'} |`);
}

// npm run bench: W1 (throughput), W3 (CPU-heavy handlers) and W4 (priority
// under load) for this bus
// and its peers, each run in a fresh process, W1 repeated and reported as
// the median. Usage: node bench/run.mjs [--runs N] [--only native,fastq]

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 5;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined;
const names = ['native', 'eventemitter', 'fastq', 'fastq1', 'pqueue'].filter((n) => !only || only.includes(n));
const labels = { native: 'this bus', eventemitter: 'node:events', fastq: 'fastq (c=1024)', fastq1: 'fastq (c=1)', pqueue: 'p-queue (c=1024)' };
const workload = fileURLToPath(new URL('./workload.mjs', import.meta.url));

function run(kind, name) {
  return JSON.parse(execFileSync(process.execPath, [workload, kind, name], { encoding: 'utf8' }).trim().split('\n').at(-1));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const fmt = (n, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model}), median of ${runs} runs\n`);

const w1 = {};
for (const name of names) {
  const results = Array.from({ length: runs }, () => run('w1', name));
  w1[name] = Object.fromEntries(Object.keys(results[0]).map((k) => [k, median(results.map((r) => r[k]))]));
}
const base = w1.native?.e2ePerSec;
console.log('W1: 200 000 events, {userId, email, n}, 10 % critical / 70 % normal / 20 % low, trivial async handler,');
console.log('    bursts of 1000 then setImmediate');
console.log('| queue | accepted/s | end-to-end/s | this bus ÷ it | max loop delay | peak RSS |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const name of names) {
  const r = w1[name];
  const ratio = base ? `${fmt(base / r.e2ePerSec, 2)}×` : '';
  console.log(`| ${labels[name]} | ${fmt(r.acceptedPerSec)} | ${fmt(r.e2ePerSec)} | ${ratio} | ${fmt(r.maxDelayMs, 1)} ms | ${fmt(r.peakRssMB)} MB |`);
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

console.log('\nW4: 10 000 low events, then 100 critical while every handler is busy (window 64)');
console.log('| queue | first critical handled at | last critical handled at | within window + 100 |');
console.log('| --- | ---: | ---: | :---: |');
for (const name of names) {
  const r = run('w4', name);
  console.log(`| ${labels[name]} | ${r.firstCritical} | ${r.lastCritical} | ${r.withinTarget ? 'yes' : 'no'} |`);
}

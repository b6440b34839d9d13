// The Redis backend side by side with BullMQ, on the same local Redis
// (REDIS_URL; scripts/with-redis.sh starts a throwaway one):
//
//   scripts/with-redis.sh node bench/redis.mjs [events] [runs]
//   scripts/with-redis.sh node bench/redis.mjs profile [events] [runs] [consumers]
//
// For each contender, `events` events of about 100 B, three priorities
// (BullMQ: priorities 1/2/3, attempts 3), medians of `runs`:
// - enqueue/s: one process adds them all (1000 in flight);
// - handled/s with 1 and with 3 consumer processes (concurrency 64 each),
//   the queue filled first, timed from the consumers' start to the last
//   handler;
// - Redis CPU per event: INFO cpu (user + sys) over enqueue and handling,
//   divided by the events;
// - emit → handler-start latency p50/p99: an open-loop producer at 2000
//   events/s for 2 s, one consumer;
// - takeover: a consumer holding 200 events (its handler never returns) is
//   killed with SIGKILL; the time from the kill until another consumer has
//   run them all (claimIdleMs 1000 here; BullMQ's lockDuration and
//   stalledInterval 1000).

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = fileURLToPath(import.meta.url);
const url = process.env.REDIS_URL;
const [mode, ...args] = process.argv.slice(2);
const PRIORITIES = ['critical', 'normal', 'low'];
const payload = (n) => ({ n, sent: 0, text: 'x'.repeat(60) });

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}
function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
const now = () => performance.timeOrigin + performance.now();

function ourBus(name) {
  const { BufferedEventBusService } = require('..');
  return new BufferedEventBusService({
    backend: { type: 'redis', url, name, claimIdleMs: 1000 },
    maxQueueSize: 1_000_000,
    concurrency: 64,
    retryAttempts: 2,
    monitoring: { enabled: false, healthMonitoring: false },
  });
}

function bullConnection() {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
}

/** Child: adds `events` events, prints { ms }. */
async function enqueue(kind, name, events) {
  const started = now();
  if (kind === 'bus') {
    const bus = ourBus(name);
    await bus.initialize();
    const inFlight = [];
    for (let n = 0; n < events; n++) {
      inFlight.push(bus.emitEvent('job', payload(n), { priority: PRIORITIES[n % 3] }));
      if (inFlight.length === 1000) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
    const ms = now() - started;
    await bus.shutdown();
    return { ms };
  }
  const { Queue } = require('bullmq');
  const queue = new Queue(name, { connection: bullConnection() });
  for (let n = 0; n < events; n += 1000) {
    const jobs = [];
    for (let k = n; k < Math.min(events, n + 1000); k++) jobs.push({ name: 'job', data: payload(k), opts: { priority: 1 + (k % 3), attempts: 3, removeOnComplete: true } });
    await queue.addBulk(jobs);
  }
  const ms = now() - started;
  await queue.close();
  return { ms };
}

/** Child: handles until `events` have run in the whole group (a counter in Redis), prints { ms, handled }. */
async function consume(kind, name, events, latency) {
  const lat = [];
  let handled = 0;
  let first = 0;
  let last = 0;
  const hang = process.env.BENCH_HANG === '1';
  const onEvent = (data) => {
    if (hang) return new Promise(() => {});
    last = now();
    if (handled++ === 0) first = last;
    if (latency && data.sent > 0) lat.push(last - data.sent);
  };
  let stop;
  if (kind === 'bus') {
    const bus = ourBus(name);
    bus.registerHandler('job', (e) => onEvent(e.payload));
    if (hang) process.send?.({ holding: true });
    await bus.initialize();
    stop = () => bus.shutdown({ timeout: 2000 });
  } else {
    const { Worker } = require('bullmq');
    const worker = new Worker(name, async (job) => onEvent(job.data), { connection: bullConnection(), concurrency: hang ? 256 : 64, stalledInterval: 1000, lockDuration: 1000, maxStalledCount: 3 });
    stop = () => worker.close();
  }
  process.send?.({ ready: true });
  await new Promise((resolve) => process.on('message', (m) => m === 'stop' && resolve()));
  const out = { first, last, handled, lat };
  await stop();
  return out;
}

function redisCpu() {
  const info = spawnSync('redis-cli', ['-u', url, 'info', 'cpu'], { encoding: 'utf8' }).stdout;
  const field = (f) => Number(new RegExp(`${f}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

function child(...argv) {
  const run = spawnSync(process.execPath, [here, ...argv], { encoding: 'utf8', env: process.env, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').pop());
}

function flush() {
  spawnSync('redis-cli', ['-u', url, 'flushall'], { encoding: 'utf8' });
}

/** Starts `n` consumers and waits until each is ready; `outs`: what each prints when stopped. */
async function consumers(kind, name, n, events) {
  const kids = Array.from({ length: n }, () => spawn(process.execPath, [here, 'consume', kind, name, String(events)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] }));
  const outs = kids.map(
    (k) =>
      new Promise((resolve) => {
        let text = '';
        k.stdout.on('data', (d) => (text += d));
        k.on('exit', () => resolve(JSON.parse(text.trim().split('\n').pop())));
      }),
  );
  await Promise.all(kids.map((k) => new Promise((resolve) => k.on('message', (m) => m.ready && resolve()))));
  return { kids, outs };
}

/** Starts `n` consumers, waits until the group has handled `events`, stops them. */
async function handle(kind, name, n, events) {
  const { kids, outs } = await consumers(kind, name, n, events);
  // The queue drains: poll how much is left.
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const left = kind === 'bus' ? Number(spawnSync('redis-cli', ['-u', url, 'get', `{bootify:${name}}:depth`], { encoding: 'utf8' }).stdout.trim() || 0) : Number(spawnSync('redis-cli', ['-u', url, 'eval', `return redis.call('zcard', KEYS[1]) + redis.call('llen', KEYS[2]) + redis.call('llen', KEYS[3])`, '3', `bull:${name}:prioritized`, `bull:${name}:wait`, `bull:${name}:active`], { encoding: 'utf8' }).stdout.trim() || 0);
    if (left === 0) break;
  }
  kids.forEach((k) => k.send('stop'));
  const results = (await Promise.all(outs)).filter((r) => r.handled > 0);
  if (results.length === 0) return { ms: NaN, handled: 0, last: 0 };
  // From the group's first handler to its last: process start-up is not counted.
  const ms = Math.max(...results.map((r) => r.last)) - Math.min(...results.map((r) => r.first));
  return { ms, handled: results.reduce((a, r) => a + r.handled, 0), last: Math.max(...results.map((r) => r.last)) };
}

async function latency(kind, name) {
  const kid = spawn(process.execPath, [here, 'consume', kind, name, '0', 'latency'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let text = '';
  kid.stdout.on('data', (d) => (text += d));
  const exited = new Promise((resolve) => kid.on('exit', resolve));
  await new Promise((resolve) => kid.on('message', (m) => m.ready && resolve()));
  const rate = 2000;
  const total = rate * 2;
  let emit;
  let close;
  if (kind === 'bus') {
    const bus = ourBus(name);
    await bus.initialize();
    emit = (n) => bus.emitEvent('job', { ...payload(n), sent: now() }, { priority: PRIORITIES[n % 3] });
    close = () => bus.shutdown();
  } else {
    const { Queue } = require('bullmq');
    const queue = new Queue(name, { connection: bullConnection() });
    emit = (n) => queue.add('job', { ...payload(n), sent: now() }, { priority: 1 + (n % 3), attempts: 3, removeOnComplete: true });
    close = () => queue.close();
  }
  const start = now();
  const pending = [];
  for (let n = 0; n < total; n++) {
    const due = start + (n * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(emit(n));
  }
  await Promise.all(pending);
  await new Promise((r) => setTimeout(r, 500));
  kid.send('stop');
  await exited;
  await close();
  const lat = JSON.parse(text.trim().split('\n').pop()).lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), n: lat.length };
}

/** Kills a consumer holding `n` events; ms until another has run them all. */
async function takeover(kind, name, n) {
  child('enqueue', kind, name, String(n));
  const victim = spawn(process.execPath, [here, 'consume', kind, name, '0'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, BENCH_HANG: '1' } });
  // Holding: everything taken (its handlers never return).
  const cli = (...argv) => spawnSync('redis-cli', ['-u', url, ...argv], { encoding: 'utf8' }).stdout;
  const pending = (key) => Number(/pending\n(\d+)/.exec(cli('xinfo', 'groups', key))?.[1] ?? 0);
  const holding = () =>
    kind === 'bus' ? PRIORITIES.reduce((sum, p) => sum + pending(`{bootify:${name}}:${p}:job`), 0) : Number(cli('llen', `bull:${name}:active`).trim() || 0);
  for (let i = 0; i < 500 && holding() < n; i++) await new Promise((r) => setTimeout(r, 20));
  const killed = now();
  victim.kill('SIGKILL');
  await new Promise((r) => victim.once('exit', r));
  const h = await handle(kind, name, 1, n);
  return h.handled >= n ? Math.max(0, Math.max(h.last ?? 0, 0) - killed) : NaN;
}

/** CPU (ms) per thread of process `pid`, from /proc (Linux). */
function threadCpu(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime + stime, in clock ticks of 10 ms.
      out[`${comm}:${tid}`] = (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/**
 * `profile [events] [runs] [consumers]`: where the handling time goes. The
 * queue is filled, then the consumers handle it while this samples the CPU
 * of each of their threads (summed by thread name) and of redis-server,
 * and Redis's per-command CPU.
 */
async function profile(events, runs, count) {
  const cli = (...argv) => spawnSync('redis-cli', ['-u', url, ...argv], { encoding: 'utf8' }).stdout.trim();
  const redisPid = Number(/process_id:(\d+)/.exec(cli('info', 'server'))?.[1]);
  const byName = (pids) => {
    const sum = {};
    for (const pid of pids) for (const [k, ms] of Object.entries(threadCpu(pid))) sum[k] = ms;
    return sum;
  };
  for (let run = 0; run < runs; run++) {
    flush();
    const name = `profile-${run}`;
    child('enqueue', 'bus', name, String(events));
    const { kids, outs } = await consumers('bus', name, count, events);
    cli('config', 'resetstat');
    const pids = [...kids.map((k) => k.pid), redisPid];
    const before = byName(pids);
    while (Number(cli('get', `{bootify:${name}}:depth`) || 0) > 0) await new Promise((r) => setTimeout(r, 10));
    const after = byName(pids);
    const commands = cli('info', 'commandstats')
      .split('\n')
      .map((l) => /^cmdstat_(\S+):calls=(\d+),usec=(\d+)/.exec(l))
      .filter((m) => m && Number(m[3]) > 1000)
      .map((m) => `${m[1]} ${m[2]} calls ${(Number(m[3]) / events).toFixed(2)} µs/event`);
    kids.forEach((k) => k.send('stop'));
    const results = (await Promise.all(outs)).filter((r) => r.handled > 0);
    const ms = Math.max(...results.map((r) => r.last)) - Math.min(...results.map((r) => r.first));
    // Per thread name (main thread "node", workers, "bootify-redis", "redis-server"), over all processes.
    const cpu = {};
    for (const [k, v] of Object.entries(after)) {
      const thread = k.replace(/:\d+$/, '');
      cpu[thread] = (cpu[thread] ?? 0) + v - (before[k] ?? 0);
    }
    const perEvent = Object.entries(cpu)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${((v * 1000) / events).toFixed(2)}`)
      .join(', ');
    console.log(`run ${run + 1}: ${Math.round(events / (ms / 1000)).toLocaleString('en-US')} handled/s`);
    console.log(`  CPU µs/event by thread: ${perEvent}`);
    console.log(`  Redis commands: ${commands.join('; ')}`);
  }
}

async function main() {
  if (!url) throw new Error('REDIS_URL is not set: run through scripts/with-redis.sh');
  if (mode === 'profile') return profile(Number(args[0] ?? 200_000), Number(args[1] ?? 3), Number(args[2] ?? 1));
  if (mode === 'enqueue') return console.log(JSON.stringify(await enqueue(args[0], args[1], Number(args[2]))));
  if (mode === 'consume') return console.log(JSON.stringify(await consume(args[0], args[1], Number(args[2]), args[3] === 'latency')));
  const events = Number(mode ?? 50_000);
  const runs = Number(args[0] ?? 3);
  const rows = [];
  for (const kind of ['bus', 'bullmq']) {
    const r = { enqueue: [], one: [], three: [], cpu: [], p50: [], p99: [], takeover: [] };
    for (let i = 0; i < runs; i++) {
      for (const processes of [1, 3]) {
        flush();
        const name = `bench-${kind}-${i}-${processes}`;
        const cpu0 = redisCpu();
        const e = child('enqueue', kind, name, String(events));
        const h = await handle(kind, name, processes, events);
        const cpu = redisCpu() - cpu0;
        if (processes === 1) {
          r.enqueue.push(events / (e.ms / 1000));
          r.cpu.push((cpu * 1e6) / events);
          r.one.push(h.handled / (h.ms / 1000));
        } else r.three.push(h.handled / (h.ms / 1000));
      }
      flush();
      const l = await latency(kind, `lat-${kind}-${i}`);
      r.p50.push(l.p50);
      r.p99.push(l.p99);
      flush();
      r.takeover.push(await takeover(kind, `take-${kind}-${i}`, 200));
    }
    rows.push([kind === 'bus' ? 'this bus' : 'BullMQ 6.7', ...['enqueue', 'one', 'three', 'cpu', 'p50', 'p99', 'takeover'].map((k) => median(r[k]))]);
  }
  const f = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  console.log(`${events} events of ~100 B, three priorities, median of ${runs}; Redis ${spawnSync('redis-cli', ['-u', url, 'info', 'server'], { encoding: 'utf8' }).stdout.match(/redis_version:(\S+)/)?.[1]}\n`);
  console.log('| contender | enqueue/s | handled/s, 1 process | handled/s, 3 processes | Redis CPU per event | latency p50 | latency p99 | takeover of 200 |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, enq, one, three, cpu, p50, p99, take] of rows) {
    console.log(`| ${name} | ${f(enq)} | ${f(one)} | ${f(three)} | ${f(cpu, 1)} µs | ${f(p50, 2)} ms | ${f(p99, 2)} ms | ${f(take)} ms |`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

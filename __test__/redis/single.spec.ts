// One bus on a real redis-server (REDIS_URL, from scripts/with-redis.sh):
// what goes over the wire, what comes back broken, the group's bound, and
// a Redis restart in the middle of the load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BufferedEventBusService, type BufferedEvent, type BufferedEventConfigInput } from '../..';
import { deferred, rejectsWithCode, waitFor } from '../helpers';

const url = process.env.REDIS_URL as string;
const skip = url ? false : 'REDIS_URL is not set (run through scripts/with-redis.sh)';
let buses = 0;

function redisCli(...args: string[]): string {
  const run = spawnSync('redis-cli', ['-u', url, ...args], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

async function started(t: { after(fn: () => unknown): void }, config: BufferedEventConfigInput = {}, name = `single-${process.pid}-${buses++}`): Promise<BufferedEventBusService> {
  const bus = new BufferedEventBusService({ retryDelays: [100], retryAttempts: 1, ...config, backend: { type: 'redis', url, name } });
  t.after(() => bus.shutdown({ timeout: 2000 }));
  return bus;
}

test('payloads cross the wire as they were emitted: dates, maps, sets, buffers and typed arrays, undefined and NaN', { skip }, async (t) => {
  const bus = await started(t);
  const got: BufferedEvent[] = [];
  bus.registerHandler('typed', (e) => {
    got.push(e);
  });
  await bus.initialize();
  const payload = {
    at: new Date(86_400_000),
    map: new Map([['k', { n: 1 }]]),
    set: new Set([1, 2]),
    bytes: new Uint8Array([1, 2, 255]),
    shorts: new Int16Array([-2, 3]),
    buffer: Buffer.from('hi'),
    raw: new Uint8Array([9]).buffer,
    nested: [undefined, NaN, -Infinity],
    $bootify: 'mine',
  };
  const id = await bus.emitEvent('typed', payload, { priority: 'critical', correlationId: 'req-1' });
  // Flat (plain JSON on the wire) but for a NaN.
  await bus.emitEvent('typed', { ratio: NaN, n: 1 });
  await waitFor(() => got.length === 2, 'the events back from Redis');
  const e = got[0];
  assert.equal(e.id, id);
  assert.equal(e.correlationId, 'req-1');
  assert.equal(e.priority, 'critical');
  assert.deepEqual(e.payload, payload);
  assert.deepEqual(got[1].payload, { ratio: NaN, n: 1 });
});

test('an entry no process can read goes to the dead-letter queue with the reason; the bus carries on', { skip }, async (t) => {
  const bus = await started(t);
  const name = bus.getConfig().backend.name;
  const ran: number[] = [];
  bus.registerHandler('job', (e: BufferedEvent<{ n: number }>) => {
    ran.push(e.payload.n);
  });
  await bus.initialize();
  // Written by something else into our stream: not an envelope, and one of a future version.
  redisCli('XADD', `{bootify:${name}}:normal:job`, '*', 'e', 'not json');
  redisCli('XADD', `{bootify:${name}}:normal:job`, '*', 'e', '{"v":99,"id":"x","type":"job"}');
  redisCli('XADD', `{bootify:${name}}:normal:job`, '*', 'other', 'field');
  await bus.emitEvent('job', { n: 1 });
  await waitFor(() => ran.length === 1 && bus.getDeadLetterQueue().length === 3, 'the good event run and three dead letters', 10_000);
  const letters = bus.getDeadLetterQueue();
  assert.deepEqual(
    letters.map((l) => l.lastError?.name),
    ['StreamDecodeError', 'StreamDecodeError', 'StreamDecodeError'],
  );
  assert.match(letters[1].lastError?.message ?? '', /version 99/);
  assert.equal(bus.getMetrics().backend?.undecodable, 3);
});

test('maxQueueSize bounds the whole group: past it emissions reject with QUEUE_FULL, or run here with fallbackToSync', { skip }, async (t) => {
  const emitter = await started(t, { maxQueueSize: 100, fallbackToSync: false });
  await emitter.initialize();
  for (let n = 0; n < 100; n++) await emitter.emitEvent('nobody.handles', { n });
  await rejectsWithCode(() => emitter.emitEvent('nobody.handles', { n: 100 }), 'QUEUE_FULL', 'maxQueueSize');
  await waitFor(() => (emitter.getMetrics().backend?.group.unhandledTypes ?? []).some((u) => u.type === 'nobody.handles' && u.waiting === 100), 'the waiting type in the metrics', 10_000);
  assert.match(emitter.metricsText(), /bootify_events_group_unhandled\{type="nobody.handles"\} 100/);
  await emitter.updateConfig({ fallbackToSync: true });
  let inline = 0;
  emitter.registerHandler('nobody.handles', () => {
    inline++;
  });
  // Now this process handles the type: the 100 drain, and emissions go on.
  await emitter.emitEvent('nobody.handles', { n: 101 });
  await waitFor(() => inline >= 101, 'the queued events and the new one handled', 10_000);
});

test('Redis restarted in the middle of the load: emissions fail visibly meanwhile, health says so, and the bus recovers', { skip, timeout: 60_000 }, async (t) => {
  const server = process.env.REDIS_SERVER;
  const dir = process.env.REDIS_DIR;
  const port = process.env.REDIS_PORT;
  if (!server || !dir || !port) return t.skip('needs REDIS_SERVER, REDIS_DIR and REDIS_PORT (scripts/with-redis.sh)');
  const bus = await started(t, { fallbackToSync: false });
  const handled = new Set<string>();
  bus.registerHandler('job', (e) => {
    handled.add(e.id);
  });
  await bus.initialize();
  const ids: string[] = [];
  for (let n = 0; n < 200; n++) ids.push(await bus.emitEvent('job', { n }));
  await waitFor(() => handled.size === 200, 'the first 200 handled');
  // SHUTDOWN writes the AOF; the same server comes back on the same data.
  redisCli('SHUTDOWN');
  await rejectsWithCode(() => bus.emitEvent('job', { n: -1 }), 'BACKEND_UNAVAILABLE');
  assert.equal((await bus.getHealthStatus()).status, 'unhealthy');
  assert.equal(bus.getMetrics().backend?.connected, false);
  const up = spawnSync(server, ['--bind', '127.0.0.1', '--port', port, '--dir', dir, '--daemonize', 'yes', '--pidfile', `${dir}/redis.pid`, '--logfile', `${dir}/redis.log`, '--save', '', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction']);
  assert.equal(up.status, 0, String(up.stderr));
  await waitFor(() => spawnSync('redis-cli', ['-u', url, 'ping'], { encoding: 'utf8' }).stdout.includes('PONG'), 'Redis back');
  // The connection manager reconnects on the next command.
  let back = false;
  for (let attempt = 0; attempt < 50 && !back; attempt++) {
    try {
      ids.push(await bus.emitEvent('job', { n: 200 }));
      back = true;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.ok(back, 'emissions succeed again');
  for (let n = 201; n < 400; n++) ids.push(await bus.emitEvent('job', { n }));
  await waitFor(() => ids.every((id) => handled.has(id)), 'every accepted event handled', 30_000);
  for (let i = 0; i < 100 && (await bus.getHealthStatus()).status === 'unhealthy'; i++) await new Promise((r) => setTimeout(r, 50));
  assert.notEqual((await bus.getHealthStatus()).status, 'unhealthy', 'health back');
  assert.ok((bus.getMetrics().backend?.outages ?? 0) >= 1, 'the outage is counted');
});

test('events a process took and will not run go back to the group at once when it shuts down', { skip, timeout: 30_000 }, async (t) => {
  const first = await started(t, { concurrency: 1 });
  const name = first.getConfig().backend.name;
  const begun: string[] = [];
  first.registerHandler('job', async (e) => {
    begun.push(e.id);
    await new Promise((r) => setTimeout(r, 300));
  });
  await first.initialize();
  for (let n = 0; n < 4; n++) await first.emitEvent('job', { n });
  await waitFor(() => begun.length === 1, 'one event running');
  await waitFor(() => first.getMetrics().queueMetrics.size === 3, 'the rest taken from the group, queued here');
  const report = await first.shutdown({ timeout: 0 });
  const left = report.remaining.map((e) => e.id).sort();
  assert.equal(left.length, 3, 'the three never started are reported as remaining');
  // Another process on the same group (claimIdleMs 30 s: only a release makes it this quick).
  const second = new BufferedEventBusService({ backend: { type: 'redis', url, name } });
  t.after(() => second.shutdown({ timeout: 2000 }));
  const seen: string[] = [];
  second.registerHandler('job', (e) => {
    seen.push(`${e.id} ${e.retryCount}`);
  });
  await second.initialize();
  await waitFor(() => seen.length >= 3, 'the events on the other process', 10_000);
  assert.deepEqual(seen.sort(), left.map((id) => `${id} 0`), 'each as its first attempt');
});

test('a retry a process took and will not run goes back to the group as the attempt it is, not one more', { skip, timeout: 30_000 }, async (t) => {
  const first = await started(t, { concurrency: 1 });
  const name = first.getConfig().backend.name;
  first.registerHandler('job', async (e) => {
    const { n } = e.payload as { n: number };
    if (n === 0) throw new Error('fails once here');
    await new Promise((r) => setTimeout(r, 1000));
  });
  await first.initialize();
  await first.emitEvent('job', { n: 0 });
  await first.emitEvent('job', { n: 1 });
  // The retry of n 0 is promoted and read back while n 1 holds the only worker.
  await waitFor(() => first.getMetrics().backend?.retried === 1 && first.getMetrics().backend?.held === 2, 'the retry taken back here, behind the slow event');
  await first.shutdown({ timeout: 0 });
  const second = new BufferedEventBusService({ backend: { type: 'redis', url, name }, retryAttempts: 1 });
  t.after(() => second.shutdown({ timeout: 2000 }));
  const seen: string[] = [];
  second.registerHandler('job', (e) => {
    seen.push(`${(e.payload as { n: number }).n} ${e.retryCount}`);
  });
  await second.initialize();
  await waitFor(() => seen.length > 0 || second.getDeadLetterQueue().length > 0, 'the retry on the other process', 10_000);
  assert.deepEqual(seen, ['0 1'], 'its one retry runs there (not dead-lettered as redelivered too often)');
});

test('a handler failing while its bus shuts down is retried by the group, not dead-lettered', { skip, timeout: 30_000 }, async (t) => {
  const first = await started(t, { concurrency: 1, retryDelays: [200] });
  const name = first.getConfig().backend.name;
  let begun = 0;
  first.registerHandler('job', async () => {
    begun++;
    await new Promise((r) => setTimeout(r, 100));
    throw new Error('the first process fails');
  });
  await first.initialize();
  const ids: string[] = [];
  for (let n = 0; n < 3; n++) ids.push(await first.emitEvent('job', { n }));
  await waitFor(() => begun === 1, 'the first event running');
  await waitFor(() => first.getMetrics().queueMetrics.size === 2, 'the other two taken from the group, queued here');
  const report = await first.shutdown({ timeout: 10_000 });
  assert.equal(report.remaining.length, 0, 'the drain ran every event once');
  assert.equal(first.getMetrics().queueMetrics.handedOver, 3);
  assert.equal(first.getMetrics().retryStats.deadLettered, 0, 'no failure of the drain became a dead letter');
  const second = new BufferedEventBusService({ backend: { type: 'redis', url, name } });
  t.after(() => second.shutdown({ timeout: 2000 }));
  const seen: string[] = [];
  second.registerHandler('job', (e) => {
    seen.push(`${e.id} ${e.retryCount}`);
  });
  await second.initialize();
  await waitFor(() => seen.length >= 3, 'the retries on the other process', 10_000);
  assert.deepEqual(seen.sort(), ids.sort().map((id) => `${id} 1`), 'each as its first retry');
});

test('shutdown() does not hang on a Redis that stopped answering', { skip, timeout: 60_000 }, async (t) => {
  const dir = process.env.REDIS_DIR;
  if (!dir) return t.skip('needs REDIS_DIR (scripts/with-redis.sh)');
  const bus = new BufferedEventBusService({ backend: { type: 'redis', url, name: `hang-${process.pid}` }, fallbackToSync: false });
  bus.registerHandler('job', () => {});
  await bus.initialize();
  await bus.emitEvent('job', { n: 1 });
  const pid = Number(readFileSync(`${dir}/redis.pid`, 'utf8').trim());
  // A paused server: connections stay open, nothing answers.
  process.kill(pid, 'SIGSTOP');
  t.after(() => process.kill(pid, 'SIGCONT'));
  const pending = bus.emitEvent('job', { n: 2 });
  pending.catch(() => {});
  const started = Date.now();
  await bus.shutdown({ timeout: 500 });
  assert.ok(Date.now() - started < 8_000, `shutdown took ${Date.now() - started} ms`);
  await assert.rejects(pending, (err: { code?: string }) => err.code === 'SHUTTING_DOWN' || err.code === 'BACKEND_UNAVAILABLE');
  process.kill(pid, 'SIGCONT');
});

/** Handlers as BootifyJS applications write them: classes whose instances are registered. */
function orderHandlers(ran: string[], failing: string) {
  const make = (key: string) =>
    class {
      handle(event: BufferedEvent): void {
        ran.push(`${key} ${event.retryCount}`);
        if (key === failing) throw new TypeError(`${key} failed`);
      }
    };
  const Audit = make('Audit.handle');
  Object.defineProperty(Audit, 'name', { value: 'Audit' });
  const Mailer = make('Mailer.handle');
  Object.defineProperty(Mailer, 'name', { value: 'Mailer' });
  const Courier = make('Courier.handle');
  Object.defineProperty(Courier, 'name', { value: 'Courier' });
  return { Audit, Mailer, Courier };
}

test('a dead letter replays its failed handler alone, with fresh attempts; the event\'s other handler is not run again', { skip, timeout: 30_000 }, async (t) => {
  const bus = await started(t);
  const ran: string[] = [];
  const { Audit, Mailer } = orderHandlers(ran, 'Mailer.handle');
  bus.registerHandler('order', new Audit());
  bus.registerHandler('order', new Mailer());
  await bus.initialize();
  await bus.emitEvent('order', { n: 1 });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the failing handler dead-lettered', 15_000);
  const [letter] = bus.getDeadLetterQueue();
  assert.equal(letter.handler, 'Mailer.handle');
  assert.equal(letter.handlerKey, 'Mailer.handle');
  assert.equal(letter.attempts, 2);
  assert.deepEqual(letter.errors.map((e) => e.name), ['TypeError', 'TypeError']);
  assert.deepEqual(ran.sort(), ['Audit.handle 0', 'Mailer.handle 0', 'Mailer.handle 1']);
  const metrics = bus.getMetrics();
  assert.equal(metrics.backend?.retried, 1, 'the retry went through the group\'s retry set');
  assert.equal(metrics.queueMetrics.handedOver, 1, 'the first run handed the event over rather than finishing it');
  assert.equal(bus.replayDeadLetter(letter.id), 1);
  await waitFor(() => ran.length === 5 && bus.getDeadLetterQueue().length === 1 && bus.getDeadLetterQueue()[0].id !== letter.id, 'the replay run and lettered again', 15_000);
  assert.deepEqual(ran.slice(3), ['Mailer.handle 0', 'Mailer.handle 1'], 'only the failed handler, from attempt 0');
});

test('a retry whose handler no process has under its key (the processes disagree) is dead-lettered with the reason, not run by another handler', { skip, timeout: 30_000 }, async (t) => {
  const name = `single-${process.pid}-${buses++}`;
  const ran: string[] = [];
  const { Audit, Mailer, Courier } = orderHandlers(ran, 'Mailer.handle');
  // The old version of the application: its Mailer fails, and it stops before the retry is due.
  const old = await started(t, { retryDelays: [1500] }, name);
  old.registerHandler('order', new Audit());
  old.registerHandler('order', new Mailer());
  await old.initialize();
  const id = await old.emitEvent('order', { n: 1 });
  await waitFor(() => (old.getMetrics().backend?.retried ?? 0) === 1, 'the retry in the group', 10_000);
  await old.shutdown();
  assert.equal(redisCli('ZCARD', `{bootify:${name}}:retries`), '1');
  // The new version renamed the mailer.
  const next = await started(t, {}, name);
  next.registerHandler('order', new Audit());
  next.registerHandler('order', new Courier());
  await next.initialize();
  await waitFor(() => next.getDeadLetterQueue().length === 1, 'the retry dead-lettered', 15_000);
  const [letter] = next.getDeadLetterQueue();
  assert.equal(letter.event.id, id);
  assert.equal(letter.handlerKey, 'Mailer.handle');
  assert.equal(letter.lastError.name, 'UnknownHandlerError');
  assert.match(letter.lastError.message, /'Mailer\.handle'.*Audit\.handle, Courier\.handle/);
  assert.deepEqual(letter.errors.map((e) => e.name), ['TypeError', 'UnknownHandlerError'], 'the earlier attempt\'s error kept');
  assert.equal(next.getMetrics().backend?.unknownHandlers, 1);
  assert.deepEqual(ran.sort(), ['Audit.handle 0', 'Mailer.handle 0'], 'nothing ran in the new version');
});

test('two handlers of one name and a handler named like the second one\'s key each retry as themselves', { skip, timeout: 30_000 }, async (t) => {
  const bus = await started(t);
  const ran: string[] = [];
  const failing = (tag: string, name: string) => {
    const fn = (e: BufferedEvent) => {
      ran.push(`${tag} ${e.retryCount}`);
      throw new Error(`${tag} fails`);
    };
    Object.defineProperty(fn, 'name', { value: name });
    return fn;
  };
  bus.registerHandler('order', failing('A', 'foo'));
  bus.registerHandler('order', failing('B', 'foo'));
  bus.registerHandler('order', failing('C', 'foo#2'));
  await bus.initialize();
  await bus.emitEvent('order', { n: 1 });
  await waitFor(() => bus.getDeadLetterQueue().length === 3, 'each handler dead-lettered after its retry', 15_000);
  assert.deepEqual(bus.getDeadLetterQueue().map((l) => l.handlerKey).sort(), ['foo', 'foo#2', 'foo#2#2']);
  assert.deepEqual(ran.sort(), ['A 0', 'A 1', 'B 0', 'B 1', 'C 0', 'C 1'], 'each retry ran its own handler');
});

test('dead letters written by something else are listed with what can be read, never throw', { skip, timeout: 30_000 }, async (t) => {
  const bus = await started(t);
  bus.registerHandler('order', () => {});
  await bus.initialize();
  const name = bus.getConfig().backend.name;
  const stream = `{bootify:${name}}:normal:order`;
  redisCli('XADD', `{bootify:${name}}:dead`, '5-0', 'e', '', 'm', 'null', 's', stream);
  redisCli('XADD', `{bootify:${name}}:dead`, '6-0', 'e', 'not json', 'm', '{"handler":{"toString":0},"key":7,"attempts":"x","errors":[null,5,{"message":{},"name":"E"}]}', 's', stream);
  await waitFor(() => bus.getDeadLetterQueue().length === 2, 'the letters read from Redis');
  const [first, second] = bus.getDeadLetterQueue();
  assert.deepEqual([first.id, first.handler, first.handlerKey, first.attempts, first.errors], [5, '', undefined, 0, []]);
  assert.equal(first.event.type, 'order');
  assert.deepEqual([second.handler, second.handlerKey, second.attempts], ['', undefined, 0]);
  assert.deepEqual(second.errors.map((e) => [e.message, e.name]), [['', 'Error'], ['', 'Error'], ['', 'E']]);
  assert.equal(second.lastError.name, 'E');
  assert.equal(bus.clearDeadLetterQueue(), 2);
});

test('settled entries leave their stream at once; an entry still running and those not yet read stay', { skip, timeout: 60_000 }, async (t) => {
  const bus = await started(t, { concurrency: 2 });
  const name = bus.getConfig().backend.name;
  const stream = `{bootify:${name}}:normal:job`;
  const blocker = deferred();
  bus.registerHandler('job', async (e) => {
    if ((e.payload as { block?: boolean }).block) return blocker.promise;
    await new Promise((r) => setTimeout(r, 5));
  });
  await bus.initialize();
  const settled = () => bus.getMetrics().backend?.settled ?? 0;
  for (let n = 0; n < 60; n++) await bus.emitEvent('job', { n });
  await waitFor(() => settled() >= 20, 'a third settled');
  // Most are not read yet (the process holds a few at a time); none is lost.
  const before = settled();
  const length = Number(redisCli('XLEN', stream));
  const after = settled();
  assert.ok(length >= 60 - after && length <= 60 - before, `${length} entries left with ${before}..${after} settled`);
  await waitFor(() => settled() === 60, 'all settled', 30_000);
  assert.equal(redisCli('XLEN', stream), '0');
  // An entry that keeps running: everything after it settles around it.
  await bus.emitEvent('job', { block: true });
  for (let n = 0; n < 20; n++) await bus.emitEvent('job', { n });
  await waitFor(() => settled() === 80, 'all but the running one settled', 30_000);
  assert.equal(redisCli('XLEN', stream), '1', 'the running entry stays');
  blocker.resolve();
  await waitFor(() => settled() === 81, 'the running one settled too');
  assert.equal(redisCli('XLEN', stream), '0');
});

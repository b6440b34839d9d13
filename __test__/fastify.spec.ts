import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import Fastify, { type FastifyInstance, type FastifyServerOptions, type InjectOptions } from 'fastify';
import { type BufferedEventBusService, type BufferedEventConfigInput, NonRetryableError, testing } from '..';
import type { DeadLetterListResponse, NativeEventsPluginOptions, NativeEventsStats } from '../fastify';
import { startedBus, waitFor } from './helpers';

// The published subpath, through package.json's exports (a self-reference).
const { fastifyNativeEvents } = require('@bootifyjs/native-events/fastify') as typeof import('../fastify');

type TestContext = { after(fn: () => unknown): void };

/** A Fastify app with the plugin under `/events`, closed when the test ends. */
async function appWith(t: TestContext, options: NativeEventsPluginOptions, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const app = Fastify({ logger });
  t.after(() => app.close());
  await app.register(fastifyNativeEvents, { ...options, prefix: '/events' });
  await app.ready();
  return app;
}

/** A bus whose 'job' handler fails (not retried) while `state.failing`, counting what it handled. */
async function failingBus(t: TestContext, config: BufferedEventConfigInput = {}) {
  const bus = await startedBus(t, { retryAttempts: 0, ...config });
  const state = { failing: true, handled: [] as number[] };
  bus.registerHandler('job', (e: { n: number }) => {
    if (state.failing) throw new NonRetryableError(`job ${e.n} failed`);
    state.handled.push(e.n);
  });
  return { bus, state };
}

async function deadLetters(bus: BufferedEventBusService, ns: number[]): Promise<void> {
  const before = bus.getMetrics().retryStats.deadLettered;
  for (const n of ns) await bus.emitEvent('job', { n });
  await waitFor(() => bus.getMetrics().retryStats.deadLettered === before + ns.length, `${ns.length} dead letters`);
}

const json = <T = any>(r: { body: string }): T => JSON.parse(r.body) as T;

test('GET /metrics serves the Prometheus text with its content type', async (t) => {
  const bus = await startedBus(t);
  bus.registerHandler('order.placed', () => {});
  await bus.emitEvent('order.placed', { id: 1 });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 1, 'the event');
  const app = await appWith(t, { bus });
  const r = await app.inject('/events/metrics');
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(r.body, /^# HELP /);
  assert.match(r.body, /^bootify_events_enqueued_total 1$/m);
  assert.match(r.body, /^bootify_events_type_succeeded_total\{type="order\.placed"\} 1$/m);
  assert.match(r.body, /^bootify_events_processing_seconds_bucket\{le="\+Inf"\} 1$/m);
});

test('GET /health answers 200 when healthy or degraded and 503 when unhealthy, with the checks', async (t) => {
  const { bus } = await failingBus(t, { monitoring: { alertThresholds: { dlqSizeAlert: 1 } } });
  const app = await appWith(t, { bus });
  const healthy = await app.inject('/events/health');
  assert.equal(healthy.statusCode, 200);
  assert.equal(healthy.headers['cache-control'], 'no-store');
  const body = json(healthy);
  assert.equal(body.status, 'healthy', healthy.body);
  assert.deepEqual(body.checks.find((c: { name: string }) => c.name === 'running'), { name: 'running', status: 'pass', value: 1, threshold: 1 });
  assert.deepEqual(body.alerts, []);

  await deadLetters(bus, [1]);
  const degraded = await app.inject('/events/health');
  assert.equal(degraded.statusCode, 200);
  assert.equal(json(degraded).status, 'degraded');
  assert.equal(json(degraded).checks.find((c: { name: string }) => c.name === 'dead_letters').status, 'warn');
  bus.clearDeadLetterQueue();

  // A worker panic while the bus runs: critical until the next check.
  testing.injectWorkerPanic(bus);
  bus.registerHandler('tick', () => {});
  await bus.emitEvent('tick', {});
  await waitFor(() => bus.getWorkerStatistics().restarts === 1, 'the panic');
  const panicked = await app.inject('/events/health');
  assert.equal(panicked.statusCode, 503, panicked.body);
  assert.equal(json(panicked).status, 'unhealthy');
  assert.ok(json(panicked).alerts.some((a: { type: string; severity: string }) => a.type === 'failed_workers' && a.severity === 'critical'));

  await bus.shutdown({ timeout: 1000 });
  const stopped = await app.inject('/events/health');
  assert.equal(stopped.statusCode, 503);
  assert.equal(json(stopped).checks.find((c: { name: string }) => c.name === 'running').status, 'fail');
});

test('the dead-letter routes do not exist unless admin is given', async (t) => {
  const { bus } = await failingBus(t);
  await deadLetters(bus, [1]);
  const app = await appWith(t, { bus });
  for (const [method, url] of [
    ['GET', '/events/dead-letters'],
    ['POST', '/events/dead-letters/replay'],
    ['POST', '/events/dead-letters/1/replay'],
    ['DELETE', '/events/dead-letters/1'],
    ['DELETE', '/events/dead-letters'],
  ] as const) {
    assert.equal((await app.inject({ method, url })).statusCode, 404, `${method} ${url}`);
  }
  assert.equal(json<NativeEventsStats>(await app.inject('/events/stats')).admin, false);
  assert.equal(bus.getDeadLetterQueue().length, 1, 'nothing replayed or removed');
});

test('admin.authorize decides: only true lets a request through, before its input is read', async (t) => {
  const { bus } = await failingBus(t);
  await deadLetters(bus, [1]);
  const lines: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  let answer: unknown = false;
  const seen: unknown[] = [];
  const admin = {
    authorize(this: unknown, request: { headers: Record<string, unknown> }) {
      seen.push(this, request.headers['x-token']);
      if (answer === 'throw') throw new Error('the token store is down');
      if (answer === 'reject') return Promise.reject(new Error('rejected'));
      return answer as boolean;
    },
  };
  const app = await appWith(t, { bus, admin }, { level: 'error', stream });
  const list = (extra: Partial<InjectOptions> = {}) => app.inject({ method: 'GET', url: '/events/dead-letters', headers: { 'x-token': 't1' }, ...extra });

  const denied = await list();
  assert.equal(denied.statusCode, 403);
  assert.deepEqual(json(denied), { error: 'Forbidden', message: 'admin.authorize refused this request' });
  assert.deepEqual(seen, [admin, 't1'], 'called with the admin object as this, and the request');
  // Denied callers learn nothing about the input rules.
  assert.equal((await app.inject({ method: 'POST', url: '/events/dead-letters/abc/replay' })).statusCode, 403);
  assert.equal((await app.inject({ method: 'DELETE', url: '/events/dead-letters/1' })).statusCode, 403);
  assert.equal((await app.inject({ method: 'POST', url: '/events/dead-letters/replay' })).statusCode, 403);
  for (const truthy of ['yes', 1, {}, Promise.resolve('true')]) {
    answer = truthy;
    assert.equal((await list()).statusCode, 403, `authorize answering ${String(truthy)}`);
  }

  answer = Promise.resolve(true);
  assert.equal((await list()).statusCode, 200);
  answer = true;
  assert.equal((await list({ headers: { 'sec-fetch-site': 'same-origin' } })).statusCode, 200);
  const crossSite = await list({ headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(crossSite.statusCode, 403, 'a cross-site browser request is refused whatever authorize says');
  assert.match(json(crossSite).message, /cross-site/);

  answer = 'throw';
  const threw = await list();
  assert.equal(threw.statusCode, 500);
  assert.equal(json(threw).error, 'Internal Server Error');
  assert.doesNotMatch(threw.body, /token store/, 'the hook error is not sent to the caller');
  assert.ok(lines.some((l) => l.includes('admin.authorize threw') && l.includes('the token store is down')), 'it is logged');
  answer = 'reject';
  assert.equal((await list()).statusCode, 500);
  answer = true;
  assert.equal((await list()).statusCode, 200, 'the app keeps serving');
  assert.equal(bus.getDeadLetterQueue().length, 1, 'no denied request changed anything');
});

test('bad ids and paging are a 400 naming the field and the value', async (t) => {
  const { bus } = await failingBus(t);
  await deadLetters(bus, [1]);
  const app = await appWith(t, { bus, admin: { authorize: () => true } });
  const cases: [InjectOptions['method'], string, RegExp][] = [
    ['POST', '/events/dead-letters/abc/replay', /^id must be a dead-letter id, an integer from 1 to 9007199254740991, got "abc"$/],
    ['POST', '/events/dead-letters/0/replay', /^id must be .*got "0"$/],
    ['POST', '/events/dead-letters/-1/replay', /^id must be .*got "-1"$/],
    ['POST', '/events/dead-letters/1.5/replay', /^id must be .*got "1\.5"$/],
    ['POST', '/events/dead-letters/0x10/replay', /^id must be .*got "0x10"$/],
    ['POST', '/events/dead-letters/1e3/replay', /^id must be .*got "1e3"$/],
    ['DELETE', '/events/dead-letters/99999999999999999999', /^id must be .*got "99999999999999999999"$/],
    ['DELETE', '/events/dead-letters/9007199254740992', /^id must be .*got "9007199254740992"$/],
    ['DELETE', '/events/dead-letters/%20', /^id must be .*got " "$/],
    ['GET', '/events/dead-letters?offset=-1', /^offset must be an integer from 0 to 4294967295, got "-1"$/],
    ['GET', '/events/dead-letters?offset=4294967296', /^offset must be .*got "4294967296"$/],
    ['GET', '/events/dead-letters?limit=99999', /^limit must be an integer from 0 to 1000, got "99999"$/],
    ['GET', '/events/dead-letters?limit=1001', /^limit must be .*got "1001"$/],
    ['GET', '/events/dead-letters?limit=abc', /^limit must be .*got "abc"$/],
    ['GET', '/events/dead-letters?limit=', /^limit must be .*got ""$/],
    ['GET', '/events/dead-letters?limit=1&limit=2', /^limit must be /],
  ];
  for (const [method, url, message] of cases) {
    const r = await app.inject({ method, url });
    assert.equal(r.statusCode, 400, `${method} ${url}: ${r.body}`);
    assert.equal(json(r).error, 'Bad Request');
    assert.match(json(r).message, message, `${method} ${url}`);
  }
  const withBody = await app.inject({ method: 'POST', url: '/events/dead-letters/1/replay', headers: { 'content-type': 'application/json' }, payload: 'x'.repeat(4096) });
  assert.ok(withBody.statusCode >= 400 && withBody.statusCode < 500, `a body on a route that takes none: ${withBody.statusCode}`);
  assert.equal(typeof json(withBody).message, 'string');
  assert.equal(bus.getDeadLetterQueue().length, 1, 'no bad request changed anything');
});

test('the admin routes list pages, replay one or all, and remove one or all', async (t) => {
  const { bus, state } = await failingBus(t);
  await deadLetters(bus, [1, 2, 3, 4, 5]);
  const app = await appWith(t, { bus, admin: { authorize: () => true } });
  const ids = bus.getDeadLetterQueue().map((e) => e.id);

  const all = json<DeadLetterListResponse>(await app.inject('/events/dead-letters'));
  assert.equal(all.total, 5);
  assert.equal(all.offset, 0);
  assert.equal(all.limit, 50, 'default page size');
  assert.deepEqual(all.entries.map((e) => e.id), ids);
  const first = all.entries[0];
  assert.deepEqual(first.payload, { n: 1 });
  assert.equal(first.type, 'job');
  assert.equal(first.attempts, 1);
  assert.equal(first.event.priority, 'normal');
  assert.equal(first.lastError.name, 'NonRetryableError');
  assert.equal(first.lastError.message, 'job 1 failed');
  assert.match(first.lastError.stack ?? '', /job 1 failed/);
  assert.equal(first.errors.length, 1);
  assert.equal(first.errors[0].timedOut, false);

  const page = json<DeadLetterListResponse>(await app.inject('/events/dead-letters?offset=1&limit=2'));
  assert.deepEqual({ total: page.total, offset: page.offset, limit: page.limit }, { total: 5, offset: 1, limit: 2 });
  assert.deepEqual(page.entries.map((e) => e.payload), [{ n: 2 }, { n: 3 }]);
  assert.deepEqual(json<DeadLetterListResponse>(await app.inject('/events/dead-letters?limit=0')).entries, []);
  assert.deepEqual(json<DeadLetterListResponse>(await app.inject('/events/dead-letters?offset=99')).entries, []);

  state.failing = false;
  const replayed = await app.inject({ method: 'POST', url: `/events/dead-letters/${ids[0]}/replay` });
  assert.equal(replayed.statusCode, 200);
  assert.deepEqual(json(replayed), { replayed: 1 });
  await waitFor(() => state.handled.length === 1, 'the replayed event');
  assert.deepEqual(state.handled, [1]);
  const again = await app.inject({ method: 'POST', url: `/events/dead-letters/${ids[0]}/replay` });
  assert.equal(again.statusCode, 404);
  assert.deepEqual(json(again), { error: 'Not Found', message: `there is no dead letter with id ${ids[0]}` });

  const removed = await app.inject({ method: 'DELETE', url: `/events/dead-letters/${ids[1]}` });
  assert.equal(removed.statusCode, 200);
  assert.deepEqual(json(removed), { removed: 1 });
  assert.equal((await app.inject({ method: 'DELETE', url: `/events/dead-letters/${ids[1]}` })).statusCode, 404);
  assert.deepEqual(bus.getDeadLetterQueue().map((e) => e.id), ids.slice(2));

  const replayAll = await app.inject({ method: 'POST', url: '/events/dead-letters/replay' });
  assert.deepEqual(json(replayAll), { replayed: 3 });
  await waitFor(() => state.handled.length === 4, 'three replayed events');
  assert.deepEqual(state.handled.slice(1).sort(), [3, 4, 5]);
  assert.deepEqual(json(await app.inject({ method: 'POST', url: '/events/dead-letters/replay' })), { replayed: 0 });

  state.failing = true;
  await deadLetters(bus, [6, 7]);
  assert.deepEqual(json(await app.inject({ method: 'DELETE', url: '/events/dead-letters' })), { removed: 2 });
  assert.equal(json<DeadLetterListResponse>(await app.inject('/events/dead-letters')).total, 0);
  assert.equal(bus.getMetrics().retryStats.replayed, 4);
});

test('a payload a handler turned into a cycle with a BigInt and a throwing getter still lists', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  bus.registerHandler('mutating', (e: { payload: Record<string, unknown> }) => {
    const p = e.payload;
    p.big = 10n;
    p.self = p;
    p.fn = function helper() {};
    p.when = new Date(0);
    p.tags = new Set(['a']);
    p.deep = [[[[[[[[[['bottom']]]]]]]]]];
    p.long = 'x'.repeat(5000);
    p.many = Array.from({ length: 150 }, (_, i) => i);
    Object.defineProperty(p, 'boom', { enumerable: true, get: () => { throw new Error('no reading'); } });
    Object.defineProperty(p, '__proto__', { enumerable: true, value: 'a key, not a prototype' });
    p.huge = Array.from({ length: 100 }, () => 'y'.repeat(2000));
    throw new NonRetryableError('mutated and failed');
  });
  await bus.emitEvent('mutating', { kept: 1 });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
  assert.throws(() => JSON.stringify(bus.getDeadLetterQueue()), /BigInt/, 'plain JSON of the entry fails');
  const app = await appWith(t, { bus, admin: { authorize: () => true } });
  const r = await app.inject('/events/dead-letters');
  assert.equal(r.statusCode, 200, r.body);
  const payload = json<DeadLetterListResponse>(r).entries[0].payload as Record<string, any>;
  assert.equal(payload.kept, 1);
  assert.equal(payload.big, '[BigInt 10]');
  assert.equal(payload.self, '[Circular]');
  assert.equal(payload.fn, '[Function helper]');
  assert.equal(payload.when, '1970-01-01T00:00:00.000Z');
  assert.deepEqual(payload.tags, { '[Set]': ['a'] });
  assert.match(JSON.stringify(payload.deep), /Nested too deep/);
  assert.match(payload.long, /^x{2000}… \(3000 more characters\)$/);
  assert.equal(payload.many.length, 101);
  assert.equal(payload.many[100], '[… 50 more]');
  assert.equal(payload.boom, '[Unreadable: no reading]');
  assert.ok(payload.huge.includes('[…]'), 'a long payload is cut short');
  assert.ok(JSON.stringify(payload).length < 80_000, `rendered ${JSON.stringify(payload).length} characters`);
  assert.ok(Object.hasOwn(payload, '__proto__'));
  assert.equal(Object.getOwnPropertyDescriptor(payload, '__proto__')?.value, 'a key, not a prototype');
});

test('registration checks the options and names the field', async (t) => {
  const bus = await startedBus(t);
  const register = async (options: unknown) => {
    const app = Fastify();
    try {
      await app.register(fastifyNativeEvents, options as NativeEventsPluginOptions);
      await app.ready();
    } finally {
      await app.close().catch(() => undefined);
    }
  };
  const rejects = (options: unknown, field: string, message: RegExp) =>
    assert.rejects(register(options), (err: { code?: string; details?: { field?: string }; message: string }) => {
      assert.equal(err.code, 'INVALID_CONFIG', err.message);
      assert.equal(err.details?.field, field);
      assert.match(err.message, message);
      return true;
    });
  await rejects({ bus, admin: {} }, 'admin.authorize', /^admin\.authorize must be a function .*got undefined/);
  await rejects({ bus, admin: { authorize: 'yes' } }, 'admin.authorize', /admin\.authorize must be a function .*got "yes"/);
  await rejects({ bus, admin: true }, 'admin.authorize', /admin\.authorize must be a function .*got admin: boolean/);
  await rejects({ bus, admin: null }, 'admin.authorize', /got admin: null/);
  await rejects({}, 'bus', /^bus must be a BufferedEventBusService/);
  await rejects({ bus: { getMetrics() {} } }, 'bus', /metricsText/);
  await rejects({ bus, dashboard: 'yes' }, 'dashboard', /^dashboard must be a boolean, got "yes"/);
  await register({ bus, dashboard: false, admin: { authorize: () => false } });
});

test('the dashboard page comes with a CSP allowing only its own inline code, and its data', async (t) => {
  const bus = await startedBus(t);
  const app = await appWith(t, { bus, admin: { authorize: () => true } });
  const page = await app.inject('/events/dashboard');
  assert.equal(page.statusCode, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const file = readFileSync(path.join(__dirname, '..', 'js', 'dashboard.html'), 'utf8');
  assert.equal(page.body, file);
  assert.doesNotMatch(file, /https?:\/\//, 'no external URL');
  const csp = String(page.headers['content-security-policy']);
  const script = /<script>([\s\S]*?)<\/script>/.exec(file)![1];
  assert.ok(csp.includes(`script-src 'sha256-${createHash('sha256').update(script).digest('base64')}'`), csp);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers['x-frame-options'], 'DENY');

  bus.registerHandler('tick', () => {});
  for (let i = 0; i < 20; i++) await bus.emitEvent('tick', {}, { priority: 'low' });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 20, 'the events');
  const stats = json<NativeEventsStats>(await app.inject('/events/stats'));
  assert.equal(stats.admin, true);
  assert.equal(stats.ready, true);
  assert.equal(stats.totals.processed, 20);
  assert.equal(stats.totals.succeeded, 20);
  assert.equal(stats.queue.byPriority.low.completed, 20);
  assert.equal(stats.workers.total, 2);
  assert.equal(stats.workers.list.length, 2);
  assert.deepEqual(stats.isolates, []);
  assert.equal(stats.latency.processing.count, 20);
  assert.equal(stats.buckets.le.at(-1), null, 'the last bucket is +Inf');
  assert.equal(stats.buckets.le[0], 0.1, 'bounds in ms');
  assert.equal(stats.buckets.processing.at(-1), 20);
  assert.equal(stats.health?.status, 'healthy');
  assert.ok(stats.health?.checks.some((c) => c.name === 'running'));
});

test('dashboard: false leaves out the page and its data; the other routes stay', async (t) => {
  const bus = await startedBus(t);
  const app = await appWith(t, { bus, dashboard: false });
  assert.equal((await app.inject('/events/dashboard')).statusCode, 404);
  assert.equal((await app.inject('/events/stats')).statusCode, 404);
  assert.equal((await app.inject('/events/metrics')).statusCode, 200);
  assert.equal((await app.inject('/events/health')).statusCode, 200);
});

test('two buses under two prefixes; the plugin error handler stays inside', async (t) => {
  const one = await failingBus(t);
  const two = await failingBus(t);
  await deadLetters(one.bus, [1]);
  await deadLetters(two.bus, [2, 3]);
  const app = Fastify();
  t.after(() => app.close());
  await app.register(fastifyNativeEvents, { bus: one.bus, prefix: '/one', admin: { authorize: () => true } });
  await app.register(fastifyNativeEvents, { bus: two.bus, prefix: '/ops/two', admin: { authorize: () => true } });
  app.get('/boom', async () => {
    throw Object.assign(new Error('the app'), { statusCode: 418 });
  });
  assert.equal(json(await app.inject('/one/dead-letters')).total, 1);
  assert.equal(json(await app.inject('/ops/two/dead-letters')).total, 2);
  assert.equal((await app.inject('/dead-letters')).statusCode, 404);
  const boom = await app.inject('/boom');
  assert.equal(boom.statusCode, 418);
  assert.equal(json(boom).statusCode, 418, "the app's routes keep Fastify's error body");
});

test('replaying on a bus that is shutting down answers 503 with the bus error code', async (t) => {
  const { bus } = await failingBus(t);
  await deadLetters(bus, [1]);
  const app = await appWith(t, { bus, admin: { authorize: () => true } });
  await bus.shutdown({ timeout: 1000 });
  const r = await app.inject({ method: 'POST', url: '/events/dead-letters/replay' });
  assert.equal(r.statusCode, 503);
  assert.equal(json(r).code, 'SHUTTING_DOWN');
  assert.equal(json(r).error, 'Service Unavailable');
  assert.equal((await app.inject('/events/metrics')).statusCode, 200, 'metrics still read');
  assert.equal((await app.inject('/events/stats')).statusCode, 200);
});

test("hooks of the parent context run for the plugin's routes", async (t) => {
  const bus = await startedBus(t);
  const app = Fastify();
  t.after(() => app.close());
  await app.register(async (ops) => {
    ops.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-operator'] !== 'yes') return reply.code(401).send({ error: 'Unauthorized', message: 'operators only' });
    });
    await ops.register(fastifyNativeEvents, { bus, prefix: '/ops/events' });
  });
  for (const route of ['metrics', 'health', 'stats', 'dashboard']) {
    assert.equal((await app.inject(`/ops/events/${route}`)).statusCode, 401, route);
    assert.equal((await app.inject({ url: `/ops/events/${route}`, headers: { 'x-operator': 'yes' } })).statusCode, 200, route);
  }
});

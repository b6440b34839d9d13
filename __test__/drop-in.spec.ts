// A BootifyJS application that swaps in this bus and keeps its framework:
// its own container and synchronous bus, listeners with injected
// properties, request context in AsyncLocalStorage, and code written from
// BootifyJS's guide.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { bootstrapEventSystem, BufferedEventBusService, EventListener, OnEvent, type BufferedEvent } from '..';
import { EventBusService as FrameworkBus, FrameworkContainer, requestContextStore, requestId } from './bootify-app/framework';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

class AuditTrail {
  readonly lines: string[] = [];
}

@EventListener()
class SignupListener {
  static container: FrameworkContainer;
  readonly trail = SignupListener.container.resolve<AuditTrail>(AuditTrail);

  @OnEvent('user.signed-up')
  onSignup(event: { email: string }): void {
    this.trail.lines.push(`${event.email} ${requestId() ?? 'no request'}`);
  }
}

test("bootstrap with BootifyJS's container subscribes listeners on the framework's own synchronous bus", async (t) => {
  const framework = new FrameworkContainer();
  SignupListener.container = framework;
  framework.register(AuditTrail, { useClass: AuditTrail });
  framework.register(FrameworkBus, { useClass: FrameworkBus });
  const system = bootstrapEventSystem([SignupListener], { container: framework, useBufferedProcessing: true, bufferedEventConfig: { workerCount: 1 } });
  t.after(() => system.bufferedEventBus?.shutdown({ timeout: 1000 }));
  await system.ready;

  // The listener from this package's decorator is resolvable from the framework's container.
  assert.ok(framework.resolve(SignupListener) instanceof SignupListener);
  // Services that inject the framework's EventBusService reach the listener.
  const appBus = framework.resolve<FrameworkBus>(FrameworkBus);
  assert.equal(system.eventBus as unknown, appBus);
  await appBus.emit({ type: 'user.signed-up', payload: {}, email: 'sync@example.com' } as never);
  assert.deepEqual(framework.resolve<AuditTrail>(AuditTrail).lines, ['sync@example.com no request']);
  // And @Autowired resolution of the buffered bus through the framework's container.
  assert.equal(framework.resolve(BufferedEventBusService), system.bufferedEventBus);
});

test('bootstrap subscribes on a synchronous bus passed explicitly', async () => {
  const framework = new FrameworkContainer();
  SignupListener.container = framework;
  framework.register(AuditTrail, { useClass: AuditTrail });
  const mine = new FrameworkBus();
  const system = bootstrapEventSystem([SignupListener], { container: framework, eventBus: mine });
  assert.equal(system.eventBus as unknown, mine);
  await mine.emit({ type: 'user.signed-up', payload: {}, email: 'passed@example.com' } as never);
  assert.deepEqual(framework.resolve<AuditTrail>(AuditTrail).lines, ['passed@example.com no request']);
});

test('handlers, their retries and replays run in the async context of the emission', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 1, retryDelays: [100] });
  const seen: string[] = [];
  let failures = 1;
  bus.registerHandler('order.placed', async (e: BufferedEvent<{ n: number }>) => {
    await new Promise((resolve) => setImmediate(resolve));
    seen.push(`${e.n}:${e.retryCount}:${requestId() ?? '-'}`);
    if (e.n === 1 && failures-- > 0) throw new Error('first attempt fails');
  });
  // Two requests in one synchronous run, a third outside any request.
  requestContextStore.run(new Map([['requestId', 'req-1']]), () => void bus.emitEvent('order.placed', { n: 1 }));
  requestContextStore.run(new Map([['requestId', 'req-2']]), () => void bus.emit({ type: 'order.placed', payload: { n: 2 } }));
  await bus.emitEvent('order.placed', { n: 3 });
  await waitFor(() => seen.length === 4, 'three events and one retry');
  assert.deepEqual([...seen].sort(), ['1:0:req-1', '1:1:req-1', '2:0:req-2', '3:0:-']);
});

test('a replayed dead letter runs in the context of its original emission', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  const seen: string[] = [];
  let fail = true;
  bus.registerHandler('report.built', () => {
    seen.push(requestId() ?? '-');
    if (fail) throw new Error('not yet');
  });
  await requestContextStore.run(new Map([['requestId', 'req-7']]), () => bus.emitEvent('report.built', {}));
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
  fail = false;
  // Replayed from outside any request.
  assert.equal(bus.replayDeadLetter(), 1);
  await waitFor(() => seen.length === 2, 'the replay');
  assert.deepEqual(seen, ['req-7', 'req-7']);
});

test('propagateContext: false leaves handlers outside the emitter context', async (t) => {
  const bus = await startedBus(t, { propagateContext: false });
  let seen: string | undefined = 'unset';
  bus.registerHandler('x', () => {
    seen = requestId();
  });
  await requestContextStore.run(new Map([['requestId', 'req-9']]), () => bus.emitEvent('x', {}));
  await waitFor(() => seen !== 'unset', 'the handler');
  assert.equal(seen, undefined);
});

test('a handler event prints as the emitted event, without the bus internals', async (t) => {
  const bus = await startedBus(t);
  let printed = '';
  bus.registerHandler('user.registered', (e) => {
    printed = inspect(e);
  });
  await bus.emitEvent('user.registered', { userId: 'u1', email: 'a@example.com' }, { priority: 'critical', correlationId: 'c-1' });
  await waitFor(() => printed !== '', 'the handler');
  assert.doesNotMatch(printed, /Symbol|bootify\./);
  for (const part of ["userId: 'u1'", "email: 'a@example.com'", "type: 'user.registered'", "correlationId: 'c-1'", "priority: 'critical'", 'retryCount: 0', 'timestamp:', 'payload:']) {
    assert.ok(printed.includes(part), `${part} in ${printed}`);
  }
  assert.match(printed, /^BufferedEvent \{/);
});

test("emit('type', payload) on the buffered bus is refused with a code instead of running nothing", async (t) => {
  const bus = await startedBus(t);
  bus.registerHandler('user.registered', () => {});
  await rejectsWithCode(() => bus.emit('user.registered', { email: 'a@example.com' }), 'INVALID_ARGUMENT', 'emitEvent');
  // EventEmitter's own events still work.
  let got = 0;
  (bus as unknown as NodeJS.EventEmitter).on('custom', () => got++);
  assert.equal(bus.emit('custom'), true);
  assert.equal(got, 1);
});

test("the guide's metric, worker and health names carry the measured values", async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  bus.registerHandler('ok', () => {});
  bus.registerHandler('bad', () => {
    throw new Error('no');
  });
  for (let i = 0; i < 5; i++) await bus.emitEvent('ok', { i });
  await bus.emitEvent('bad', { i: 0 });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 6, 'six events');
  const m = bus.getMetrics();
  assert.equal(m.queue.size, m.queueMetrics.size);
  assert.equal(m.queue.utilization, m.queueMetrics.utilization);
  assert.equal(m.queue.isFull, false);
  assert.equal(m.processing.totalProcessed, 6);
  assert.equal(m.eventsProcessed, 6);
  assert.equal(m.queueSize, m.queueMetrics.size);
  assert.ok(m.processing.averageLatency > 0);
  assert.equal(m.workers.active, 2);
  assert.equal(m.workers.failed, 0);
  assert.deepEqual(Object.keys(m), ['queueMetrics', 'retryStats'], 'compatibility names are not serialised twice');
  const w = bus.getWorkerStatistics();
  assert.equal(w.failedWorkers, 0);
  assert.equal(w.workerStatuses, w.workers);
  const h = await bus.getHealthStatus();
  assert.deepEqual(h.issues, h.alerts.map((a) => a.message));
  // The guide re-emits dead letters by their type and payload.
  const [letter] = bus.getDeadLetterQueue();
  assert.equal(letter.type, 'bad');
  assert.deepEqual(letter.payload, { i: 0 });
  bus.unregisterHandler('bad');
  let again = false;
  bus.registerHandler('bad', () => {
    again = true;
  });
  await bus.emitEvent(letter.type, letter.payload);
  await waitFor(() => again, 'the re-emitted dead letter');
});

test('a throwing metrics listener is counted and warned about, and the process carries on', async (t) => {
  const bus = await startedBus(t, { monitoring: { metricsInterval: 10 } });
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  bus.on('metrics', (m) => {
    // Code written against a different metrics shape.
    (m as unknown as { nothing: { here: number } }).nothing.here;
  });
  await waitFor(() => bus.getMetrics().queueMetrics.listenerErrors >= 3, 'three failed ticks');
  await waitFor(() => warnings.some((w) => (w as { code?: string }).code === 'BOOTIFY_LISTENER_ERROR'), 'the warning');
  assert.equal(warnings.filter((w) => (w as { code?: string }).code === 'BOOTIFY_LISTENER_ERROR').length, 1, 'warned once');
});

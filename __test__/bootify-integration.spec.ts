// The seed's integration scenario, as a BootifyJS project would run it:
// decorated listeners with injected dependencies, a service emitting
// through the injected buffered bus, mixed priorities, metrics, shutdown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BufferedEventBusService,
  bootstrapEventSystem,
  container,
  defaultBufferedEventConfig,
  getAllComponents,
  type EventSystem,
} from '..';
import { LegacyNotificationListener } from './bootify-app/bootify-style';
import { OrderProcessedEvent, UserRegisteredEvent } from './bootify-app/events';
import { OrderEventHandler, UserEventHandler } from './bootify-app/handlers';
import { AuditLog, Mailer, UserRepository, UserService } from './bootify-app/services';
import { waitFor } from './helpers';

let system: EventSystem;

test.before(() => {
  system = bootstrapEventSystem([...getAllComponents(), LegacyNotificationListener], {
    useBufferedProcessing: true,
    bufferedEventConfig: { ...defaultBufferedEventConfig, enabled: true, workerCount: 4, maxQueueSize: 10000 },
  });
});

test.after(async () => {
  await system.bufferedEventBus?.shutdown();
});

test('events emitted before initialize() has finished are delivered', async () => {
  const bus = system.bufferedEventBus!;
  const id = await bus.emitEvent('user.registered', { userId: 'early', email: 'early@example.com' });
  assert.equal(typeof id, 'string');
  await system.ready;
  await waitFor(() => container.resolve(UserEventHandler).handled.includes('early'), 'the early event');
});

test('the buffered bus is injected where @Autowired asks for it', () => {
  const service = container.resolve(UserService);
  assert.ok(system.bufferedEventBus instanceof BufferedEventBusService);
  assert.equal(service.bus, system.bufferedEventBus);
  assert.equal(container.resolve(BufferedEventBusService), system.bufferedEventBus);
});

test('every handler runs exactly once with its injected dependencies and this intact', async () => {
  const bus = system.bufferedEventBus!;
  const users = container.resolve(UserService);
  const userHandler = container.resolve(UserEventHandler);
  const orderHandler = container.resolve(OrderEventHandler);
  const mailer = container.resolve(Mailer);
  const audit = container.resolve(AuditLog);
  const legacy = container.resolve(LegacyNotificationListener);
  const before = { handled: userHandler.handled.length, sent: mailer.sent.length, notified: legacy.notified.length };

  for (let i = 0; i < 20; i++) await users.registerUser(`u${i}`, `u${i}@example.com`);
  const priorities = ['critical', 'normal', 'low'] as const;
  for (let i = 0; i < 30; i++) {
    await bus.emit(new OrderProcessedEvent(`o${i}`, `c${i % 5}`, 10 + i), { priority: priorities[i % 3] });
  }
  await bus.emit(new UserRegisteredEvent('u-migrated', 'migrated@example.com', Date.now(), 'corr-77'));

  await waitFor(() => userHandler.handled.length === before.handled + 21 && orderHandler.orders.length >= 30, 'all events');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const mine = userHandler.handled.slice(before.handled);
  assert.equal(new Set(mine).size, 21, 'each user event handled once');
  assert.equal(mailer.sent.length - before.sent, 21);
  assert.equal(container.resolve(UserRepository).profiles.get('u7')?.email, 'u7@example.com');
  assert.equal(orderHandler.orders.filter((o) => o.orderId.startsWith('o')).length, 30);
  assert.equal(audit.entries.filter((e) => e.startsWith('order ')).length, 30, '@Autowired property injection');
  assert.ok(audit.entries.includes('user u-migrated'), 'a second @OnEvent method of the same class ran');
  assert.equal(legacy.notified.length - before.notified, 21, 'a BootifyJS-decorated listener ran too');
  assert.equal(LegacyNotificationListener.instances, 1, 'listeners are singletons');
  assert.equal(orderHandler.orders.find((o) => o.orderId === 'o0')?.priority, 'critical');
});

test('metrics, health and worker statistics are real', async () => {
  const bus = system.bufferedEventBus!;
  const metrics = bus.getMetrics();
  assert.ok(metrics.queueMetrics.totalProcessed >= 52);
  assert.equal(metrics.retryStats.successRate, 1);
  // Maxima are "since the previous check": the first check also covers the
  // busy tests before this one, so judge a quiet window.
  await bus.getHealthStatus();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const health = await bus.getHealthStatus();
  assert.equal(health.status, 'healthy', JSON.stringify(health.alerts));
  assert.equal(health.activeWorkers, 4);
  const workers = bus.getWorkerStatistics();
  assert.equal(workers.totalWorkers, 4);
  assert.ok(workers.totalEventsProcessed >= 52);
});

test('the synchronous bus got the same handlers', async () => {
  const userHandler = container.resolve(UserEventHandler);
  const before = userHandler.handled.length;
  await system.eventBus.emit(new UserRegisteredEvent('sync-1', 'sync@example.com'));
  assert.equal(userHandler.handled.length, before + 1);
  assert.equal(userHandler.handled.at(-1), 'sync-1');
});

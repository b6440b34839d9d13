import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BufferedEvent } from '..';
import { startedBus, waitFor } from './helpers';

class Money {
  constructor(readonly cents: number) {}
  format(): string {
    return `$${(this.cents / 100).toFixed(2)}`;
  }
}

test('handlers see event fields and payload fields at top level', async (t) => {
  const bus = await startedBus(t);
  const seen: BufferedEvent[] = [];
  bus.registerHandler('user.registered', (e: BufferedEvent) => {
    seen.push(e);
  });
  const payload = { userId: 'u1', email: 'u1@example.com' };
  const before = Date.now();
  const id = await bus.emitEvent('user.registered', payload, { priority: 'critical', correlationId: 'corr-1' });
  await waitFor(() => seen.length === 1, 'the event');
  const e = seen[0] as BufferedEvent<typeof payload>;
  assert.equal(typeof id, 'string');
  assert.equal(e.id, id);
  assert.equal(e.type, 'user.registered');
  assert.equal(e.email, 'u1@example.com');
  assert.equal(e.userId, 'u1');
  assert.equal(e.payload, payload, 'the payload keeps its identity');
  assert.equal(e.correlationId, 'corr-1');
  assert.equal(e.priority, 'critical');
  assert.equal(e.retryCount, 0);
  assert.ok(e.timestamp >= before && e.timestamp <= Date.now());
});

test('awaited emissions carry the time each was emitted, whatever the caller does between them', async (t) => {
  const bus = await startedBus(t);
  const stamps: number[] = [];
  bus.registerHandler('step', (e: BufferedEvent) => {
    stamps.push(e.timestamp);
  });
  const emittedAt: number[] = [];
  for (let i = 0; i < 3; i++) {
    emittedAt.push(Date.now());
    await bus.emitEvent('step', { i });
    // Synchronous work between two awaited emits, as a request handler does.
    const until = Date.now() + 5;
    while (Date.now() < until) {
      // busy
    }
  }
  await waitFor(() => stamps.length === 3, 'the events');
  stamps.forEach((stamp, i) => assert.ok(stamp >= emittedAt[i] && stamp - emittedAt[i] < 5, `event ${i}: ${stamp} vs ${emittedAt[i]}`));
});

test('payloads are not serialised: Dates and class instances arrive as themselves', async (t) => {
  const bus = await startedBus(t);
  let got: { when: Date; price: Money; payload: { when: Date; price: Money } } | undefined;
  bus.registerHandler('order.processed', (e: any) => {
    got = e;
  });
  const when = new Date('2026-01-02T03:04:05Z');
  const price = new Money(1999);
  await bus.emitEvent('order.processed', { when, price });
  await waitFor(() => got !== undefined, 'the event');
  assert.equal(got!.when, when);
  assert.ok(got!.price instanceof Money);
  assert.equal(got!.price.format(), '$19.99');
  assert.equal(got!.payload.price, price);
});

test('correlation ids are generated when absent and unique per event', async (t) => {
  const bus = await startedBus(t);
  const ids: string[] = [];
  bus.registerHandler('x', (e: BufferedEvent) => {
    ids.push(e.correlationId);
  });
  const a = await bus.emitEvent('x', {});
  const b = await bus.emitEvent('x', null);
  await waitFor(() => ids.length === 2, 'two events');
  assert.notEqual(a, b);
  assert.deepEqual([...ids].sort(), [a, b].sort());
});

test('emit() takes a BootifyJS event object', async (t) => {
  const bus = await startedBus(t);
  class UserRegisteredEvent {
    readonly type = 'user.registered';
    constructor(readonly userId: string, readonly email: string, public correlationId?: string) {}
    get payload() {
      return { userId: this.userId, email: this.email };
    }
  }
  const seen: BufferedEvent[] = [];
  bus.registerHandler('user.registered', (e: BufferedEvent) => {
    seen.push(e);
  });
  const id = await bus.emit(new UserRegisteredEvent('u9', 'u9@example.com', 'c-9'), { priority: 'low' });
  await waitFor(() => seen.length === 1, 'the event');
  assert.equal(seen[0].id, id);
  assert.equal((seen[0] as BufferedEvent<{ email: string }>).email, 'u9@example.com');
  assert.equal(seen[0].correlationId, 'c-9');
  assert.equal(seen[0].priority, 'low');
  assert.equal(bus.emit('custom-listener-event'), false, 'string names stay EventEmitter events');
});

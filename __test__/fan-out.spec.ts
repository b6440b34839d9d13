import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

test('every handler of a type runs, objects keep their this', async (t) => {
  const bus = await startedBus(t);
  const calls: string[] = [];
  class Mailer {
    sent: string[] = [];
    handle(event: { email: string }) {
      this.sent.push(event.email);
      calls.push('mailer');
    }
  }
  const mailer = new Mailer();
  bus.registerHandler('user.registered', mailer);
  bus.registerHandler('user.registered', async () => {
    calls.push('async fn');
  });
  bus.registerHandler('user.registered', () => {
    calls.push('sync fn');
  });
  await bus.emitEvent('user.registered', { email: 'a@example.com' });
  await waitFor(() => calls.length === 3, 'three handlers');
  assert.deepEqual([...calls].sort(), ['async fn', 'mailer', 'sync fn']);
  assert.deepEqual(mailer.sent, ['a@example.com']);
  assert.equal(bus.getMetrics().queueMetrics.succeeded, 1);
});

test('unregisterHandler removes one handler or all of a type', async (t) => {
  const bus = await startedBus(t);
  const calls: string[] = [];
  const a = () => {
    calls.push('a');
  };
  const b = { handle: () => void calls.push('b') };
  bus.registerHandler('x', a);
  bus.registerHandler('x', b);
  const removeC = bus.registerHandler('x', () => void calls.push('c'));
  assert.equal(bus.unregisterHandler('x', a), true);
  assert.equal(bus.unregisterHandler('x', a), false);
  removeC();
  await bus.emitEvent('x', {});
  await waitFor(() => calls.length === 1, 'one handler');
  assert.deepEqual(calls, ['b']);
  assert.equal(bus.unregisterHandler('x'), true);
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getMetrics().queueMetrics.deliveries.unhandled === 1, 'the unhandled event to be counted');
  assert.deepEqual(calls, ['b']);
});

test('registerHandler refuses what is not a handler', async (t) => {
  const bus = await startedBus(t);
  for (const bad of [null, 42, 'handler', {}, { handle: 'no' }]) {
    await rejectsWithCode(() => bus.registerHandler('x', bad as never), 'INVALID_HANDLER', 'handler');
  }
  await rejectsWithCode(() => bus.registerHandler('', () => {}), 'INVALID_EVENT_TYPE', 'type');
});

test('the in-flight window bounds handler invocations, fan-out included', async (t) => {
  const bus = await startedBus(t, { concurrency: 4 });
  let running = 0;
  let peak = 0;
  let done = 0;
  const slow = async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 3));
    running--;
    done++;
  };
  bus.registerHandler('fan', slow);
  bus.registerHandler('fan', slow);
  bus.registerHandler('fan', slow);
  bus.registerHandler('one', slow);
  for (let i = 0; i < 40; i++) await bus.emitEvent(i % 2 ? 'fan' : 'one', { i });
  await waitFor(() => done === 20 * 3 + 20, 'every invocation');
  assert.ok(peak <= 4, `peak of ${peak} invocations with concurrency 4`);
  assert.ok(peak >= 3, `the window was used (peak ${peak})`);
});

// Metadata interoperates both ways, and BootifyJS's own container can be
// passed in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import 'reflect-metadata';
import {
  BufferedEventBusService,
  bootstrapEventSystem,
  EVENT_LISTENER_KEY,
  EventBusService,
  EventListener,
  ON_EVENT_KEY,
  OnEvent,
  type Provider,
  type Token,
} from '..';
import { waitFor } from './helpers';

@EventListener()
class Decorated {
  @OnEvent('a.happened')
  onA(): void {}

  @OnEvent('b.happened')
  onB(): void {}
}

test("this package's decorators write BootifyJS's metadata", () => {
  assert.equal(Reflect.getMetadata('bootify:event-listener', Decorated), true);
  assert.deepEqual(Reflect.getMetadata('bootify:on-event', Decorated), [
    { eventType: 'a.happened', methodName: 'onA' },
    { eventType: 'b.happened', methodName: 'onB' },
  ]);
  assert.equal(EVENT_LISTENER_KEY, 'bootify:event-listener');
  assert.equal(ON_EVENT_KEY, 'bootify:on-event');
});

test('@OnEvent refuses an empty event type with a code', () => {
  assert.throws(() => OnEvent(''), { code: 'INVALID_EVENT_TYPE' });
});

/** A stand-in for BootifyJS's container: resolve() and register() only. */
class BootifyLikeContainer {
  readonly providers = new Map<Token, Provider>();
  readonly instances = new Map<Token, unknown>();

  register<T>(token: Token<T>, provider: Provider<T>): void {
    this.providers.set(token, provider as Provider);
  }

  resolve<T>(token: Token<T>): T {
    if (!this.instances.has(token)) {
      const p = this.providers.get(token);
      if (p?.useFactory) this.instances.set(token, p.useFactory());
      else if (typeof token === 'function') this.instances.set(token, new (token as new () => T)());
      else throw new Error(`unknown token ${String(token)}`);
    }
    return this.instances.get(token) as T;
  }
}

test('a container passed in is used for listeners and receives the buses', async () => {
  class Greeter {
    greeted: string[] = [];
    hello(event: { name: string }) {
      this.greeted.push(event.name);
    }
  }
  Reflect.defineMetadata('bootify:event-listener', true, Greeter);
  Reflect.defineMetadata('bootify:on-event', [{ eventType: 'greet', methodName: 'hello' }], Greeter);

  const external = new BootifyLikeContainer();
  const { bufferedEventBus, eventBus, ready } = bootstrapEventSystem([Greeter], {
    useBufferedProcessing: true,
    container: external,
  });
  await ready;
  assert.equal(external.resolve(BufferedEventBusService), bufferedEventBus);
  assert.equal(external.resolve(EventBusService), eventBus);
  await bufferedEventBus!.emitEvent('greet', { name: 'Ada' });
  const greeter = external.resolve(Greeter);
  await waitFor(() => greeter.greeted.length === 1, 'the greeting');
  assert.deepEqual(greeter.greeted, ['Ada']);
  await bufferedEventBus!.shutdown();
});

test('without buffered processing (or with enabled: false) only the synchronous bus exists', async () => {
  const off = bootstrapEventSystem([]);
  assert.equal(off.bufferedEventBus, null);
  assert.ok(off.eventBus instanceof EventBusService);
  const disabled = bootstrapEventSystem([], { useBufferedProcessing: true, bufferedEventConfig: { enabled: false } });
  assert.equal(disabled.bufferedEventBus, null);
  await disabled.ready;
});

test('the synchronous bus dead-letters failures instead of throwing', async () => {
  const bus = new EventBusService();
  const ran: string[] = [];
  bus.subscribe('x', () => {
    throw new Error('sync failure');
  });
  bus.subscribe('x', async () => {
    ran.push('second');
  });
  await bus.emit({ type: 'x', payload: {} });
  assert.deepEqual(ran, ['second']);
  assert.equal(bus.getDeadLetterQueue().length, 1);
  assert.match(String((bus.getDeadLetterQueue()[0].error as Error).message), /sync failure/);
});

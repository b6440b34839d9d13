import type { BootstrapOptions, ContainerLike, EventSystem } from '../index';
import { BufferedEventBusService } from './buffered-event-bus';
import { resolveConfig } from './config';
import { container as defaultContainer } from './container';
import { listenerMethods } from './decorators';
import { EventBusService } from './event-bus';

/**
 * BootifyJS's bootstrap: finds every `@EventListener()` component with
 * `@OnEvent` methods, resolves its singleton from the container, and
 * registers each method, bound to that instance, on the synchronous bus
 * and (with `useBufferedProcessing` and a config that is `enabled`) on the
 * native buffered bus, which it registers in the container and starts.
 * Events emitted before it has started are queued, then delivered.
 */
export function bootstrapEventSystem(components: readonly unknown[] = [], options: BootstrapOptions = {}): EventSystem {
  const container = options.container ?? defaultContainer;
  const eventBus = resolveOr(container, EventBusService, () => new EventBusService());
  container.register(EventBusService, { useFactory: () => eventBus });

  let bufferedEventBus: BufferedEventBusService | null = null;
  if (options.useBufferedProcessing && resolveConfig(options.bufferedEventConfig).enabled) {
    const bus = new BufferedEventBusService(options.bufferedEventConfig);
    bufferedEventBus = bus;
    // Before resolving listeners, which may inject the bus themselves.
    container.register(BufferedEventBusService, { useFactory: () => bus });
  }

  for (const component of components) {
    const methods = listenerMethods(component);
    if (methods.length === 0) continue;
    const ctor = component as abstract new (...args: any[]) => object;
    const instance = container.resolve(ctor) as Record<string | symbol, unknown>;
    for (const { eventType, methodName } of methods) {
      const method = instance[methodName];
      if (typeof method !== 'function') {
        throw new TypeError(`@OnEvent('${eventType}') on ${ctor.name}.${String(methodName)}: not a method`);
      }
      const handler = method.bind(instance) as (event: unknown) => unknown;
      Object.defineProperty(handler, 'name', { value: `${ctor.name}.${String(methodName)}` });
      eventBus.subscribe(eventType, handler);
      bufferedEventBus?.registerHandler(eventType, handler);
    }
  }

  const ready = bufferedEventBus ? bufferedEventBus.initialize() : Promise.resolve();
  // initialize() reports its failures as 'worker_error' too; keep an
  // unawaited rejection from crashing the process.
  ready.catch(() => {});
  return { eventBus, bufferedEventBus, ready };
}

function resolveOr<T>(container: ContainerLike, token: abstract new (...args: any[]) => T, make: () => T): T {
  try {
    return container.resolve(token);
  } catch {
    return make();
  }
}

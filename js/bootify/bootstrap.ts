import type { BootstrapOptions, ContainerLike, EventSystem, IEventHandler, SyncEventBusLike, Token } from '../../index';
import { BufferedEventBusService } from '../buffered-event-bus';
import { resolveConfig } from '../config';
import { container as defaultContainer } from './container';
import { listenerMethods } from './decorators';
import { BusError } from '../errors';
import { EventBusService } from './event-bus';

type Ctor = abstract new (...args: any[]) => object;

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
  const eventBus = syncBus(container, options);

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
    const ctor = component as Ctor;
    const instance = resolveListener(container, ctor) as Record<string | symbol, unknown>;
    for (const { eventType, methodName } of methods) {
      const method = instance[methodName];
      if (typeof method !== 'function') {
        throw new BusError('INVALID_HANDLER', `@OnEvent('${eventType}') on ${ctor.name}.${String(methodName)}: not a method`, {
          field: String(methodName),
        });
      }
      const handle = method.bind(instance) as (event: unknown) => unknown;
      Object.defineProperty(handle, 'name', { value: `${ctor.name}.${String(methodName)}` });
      // BootifyJS's synchronous bus takes handler objects; so do both of ours.
      eventBus.subscribe(eventType, { handle } as IEventHandler);
      bufferedEventBus?.registerHandler(eventType, handle);
    }
  }

  const ready = bufferedEventBus ? bufferedEventBus.initialize() : Promise.resolve();
  // initialize() reports its failures as 'worker_error' too; keep an
  // unawaited rejection from crashing the process.
  ready.catch(() => {});
  return { eventBus: eventBus as EventBusService, bufferedEventBus, ready };
}

/**
 * The synchronous bus the application's services resolve: the one passed,
 * the one behind `eventBusToken`, BootifyJS's `EventBusService` registered
 * in a passed container (found by class name among its components), or
 * this package's, registered in the container.
 */
function syncBus(container: ContainerLike, options: BootstrapOptions): SyncEventBusLike {
  if (options.eventBus !== undefined) return checkSyncBus(options.eventBus, 'eventBus');
  if (options.eventBusToken !== undefined) return checkSyncBus(container.resolve(options.eventBusToken), 'eventBusToken');
  const foreign = foreignSyncBusToken(container);
  if (foreign !== undefined) return checkSyncBus(container.resolve(foreign), 'the container');
  let bus: EventBusService;
  try {
    bus = container.resolve(EventBusService);
  } catch {
    bus = new EventBusService();
  }
  container.register(EventBusService, { useFactory: () => bus });
  return bus;
}

function foreignSyncBusToken(container: ContainerLike): Token | undefined {
  const listed = (container as { getRegisteredComponents?: () => unknown[] }).getRegisteredComponents;
  if (typeof listed !== 'function') return undefined;
  const tokens = listed.call(container);
  if (!Array.isArray(tokens)) return undefined;
  return tokens.find((t): t is Ctor => typeof t === 'function' && t !== EventBusService && t.name === 'EventBusService');
}

function checkSyncBus(bus: unknown, from: string): SyncEventBusLike {
  if (bus === null || typeof bus !== 'object' || typeof (bus as SyncEventBusLike).subscribe !== 'function') {
    throw new BusError('INVALID_ARGUMENT', `the synchronous bus from ${from} has no subscribe(type, handler) method`, { field: from });
  }
  return bus as SyncEventBusLike;
}

/**
 * A listener from the container. A container that knows nothing of a class
 * decorated with this package's `@EventListener()` (BootifyJS's registers
 * only its own decorations) gets it registered as a singleton first.
 */
function resolveListener(container: ContainerLike, ctor: Ctor): unknown {
  const known = (container as { isRegistered?: (token: unknown) => boolean }).isRegistered;
  if (typeof known === 'function' && !known.call(container, ctor)) {
    container.register(ctor, { useClass: ctor as new (...args: any[]) => object, scope: 'singleton' });
  }
  return container.resolve(ctor);
}

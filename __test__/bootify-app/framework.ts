// A stand-in for the parts of BootifyJS that an application brings along
// when it swaps in this package: its own DI container (register / resolve /
// isRegistered / getRegisteredComponents, resolve throws for unknown
// tokens), its own synchronous EventBusService taking `{ handle }` handler
// objects, its request-context store, and its `defaultBufferedEventConfig`
// written out value by value from BootifyJS's source.
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';

type Ctor<T = unknown> = new (...args: any[]) => T;

export class FrameworkContainer {
  readonly #services = new Map<unknown, { useClass?: Ctor; useFactory?: () => unknown; instance?: unknown }>();

  register(token: unknown, options: { useClass?: Ctor; useFactory?: () => unknown; scope?: 'singleton' | 'transient' }): void {
    if (!options.useClass && !options.useFactory) throw new Error(`registration of ${String(token)} needs useClass or useFactory`);
    this.#services.set(token, { useClass: options.useClass, useFactory: options.useFactory });
  }

  resolve<T>(token: unknown): T {
    const def = this.#services.get(token);
    if (!def) throw new Error(`[DI] Service with token '${String(token)}' is not registered.`);
    if (def.instance === undefined) {
      if (def.useFactory) def.instance = def.useFactory();
      else {
        const Class = def.useClass as Ctor;
        const params: unknown[] = Reflect.getMetadata('design:paramtypes', Class) ?? [];
        def.instance = new Class(...params.map((p) => this.resolve(p)));
      }
    }
    return def.instance as T;
  }

  isRegistered(token: unknown): boolean {
    return this.#services.has(token);
  }

  getRegisteredComponents(): Ctor[] {
    return [...this.#services.values()].flatMap((d) => (d.useClass ? [d.useClass] : []));
  }
}

interface FrameworkEvent {
  type: string;
  payload: any;
  correlationId?: string;
}

/** BootifyJS's synchronous bus: handlers are `{ handle(event) }` objects. */
export class EventBusService {
  readonly #handlers = new Map<string, { handle(event: FrameworkEvent): unknown }[]>();

  subscribe(eventType: string, handler: { handle(event: FrameworkEvent): unknown }): void {
    this.#handlers.set(eventType, [...(this.#handlers.get(eventType) ?? []), handler]);
  }

  async emit(event: FrameworkEvent): Promise<void> {
    await Promise.all((this.#handlers.get(event.type) ?? []).map((h) => h.handle(event)));
  }
}

export const requestContextStore = new AsyncLocalStorage<Map<string, any>>();

export const requestId = (): string | undefined => requestContextStore.getStore()?.get('requestId');

/** BootifyJS's `defaultBufferedEventConfig`, value for value. */
export const bootifyDefaultBufferedEventConfig = {
  enabled: true,
  workerCount: 5,
  maxQueueSize: 10000,
  maxMemoryMB: 50,
  maxEventSize: 5120,
  retryAttempts: 3,
  retryDelays: [1000, 2000, 4000],
  priorities: { critical: 3, normal: 2, low: 1 },
  memoryLimits: { maxQueueSize: 10000, maxEventSize: 5120, totalMemoryMB: 50, workerHeapMB: 100 },
  performanceLimits: { maxInputRate: 1000, targetProcessingRate: 500, maxMainThreadImpact: 5, maxQueueLatency: 100 },
  reliabilityLimits: { maxRetryAttempts: 3, workerRestartDelay: 1000, healthCheckInterval: 5000, gracefulShutdownTimeout: 10000 },
  monitoring: {
    enabled: true,
    metricsInterval: 1000,
    healthMonitoring: true,
    healthCheckInterval: 5000,
    alertThresholds: { queueDepthWarning: 8000, processingRateMin: 0, maxFailedWorkers: 1, dlqSizeAlert: 100, mainThreadCpuAlert: 10 },
  },
  fallbackToSync: true,
};

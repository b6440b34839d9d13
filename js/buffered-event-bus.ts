import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type {
  BufferedEventBusService as PublicBus,
  BufferedEventConfig,
  BufferedEventConfigInput,
  EventHandlerLike,
  EventOptions,
  EventSystemMetrics,
  HealthCheckResult,
  IEvent,
  ShutdownOptions,
  ShutdownReport,
  WorkerStatistics,
} from '../index';
import { AckBuffer, OUTCOME } from './acks';
import { resolveConfig } from './config';
import { BusError, callNative, fromNative } from './errors';
import { type EventRecord, SlotTable, toHandlerEvent, toQueuedEvent } from './event-record';
import { type DeliveryHost, runDelivery } from './fan-out';
import { checkType, describe, HandlerRegistry, type RegisteredHandler } from './handlers';
import { native, type NativeBus } from './native';
import { Observer } from './observer';
import { measurePayload } from './payload';
import { SharedRing } from './ring';

type State = 'created' | 'running' | 'draining' | 'stopped';

/** Buses whose native workers may be running, stopped on process exit. */
const live = new Set<NativeBus>();
process.on('exit', () => {
  // Env cleanup hooks do not run on a main-thread process.exit(); the
  // workers must be joined before the shared buffer goes away.
  for (const bus of live) bus.stop();
  live.clear();
});

/**
 * The native buffered event bus. See index.d.ts for the documented API.
 */
export class BufferedEventBusService extends EventEmitter implements PublicBus {
  readonly #config: BufferedEventConfig;
  readonly #native: NativeBus;
  readonly #ring: SharedRing;
  readonly #slots = new SlotTable();
  readonly #registry: HandlerRegistry;
  readonly #acks: AckBuffer;
  readonly #observer: Observer;
  readonly #idPrefix = randomBytes(4).toString('hex');
  readonly #maxMemoryBytes: number;
  #nextId = 0;
  #state: State = 'created';
  /** Accepted events not yet finished (queued or in flight). */
  #outstanding = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  #drained: (() => void) | undefined;
  #shutdown: Promise<ShutdownReport> | undefined;

  constructor(config?: BufferedEventConfigInput) {
    super();
    this.#config = resolveConfig(config);
    const words = SharedRing.allocate(this.#config.maxQueueSize, this.#config.concurrency);
    this.#native = callNative(() => new native.NativeBus(this.#config, words));
    this.#ring = new SharedRing(words);
    this.#maxMemoryBytes = this.#config.maxMemoryMB * 1024 * 1024;
    this.#registry = new HandlerRegistry((typeId, count) => this.#native.setHandlerCount(typeId, count));
    this.#acks = new AckBuffer(this.#ring, (count, failures) => {
      try {
        this.#native.complete(count, failures);
      } catch (err) {
        this.emit('worker_error', fromNative(err));
      }
    });
    this.#observer = new Observer(this.#config, this.#native, this.#ring);
  }

  async initialize(): Promise<void> {
    if (this.#state === 'running') return;
    if (this.#state !== 'created') {
      throw new BusError('INVALID_STATE', 'a bus that was shut down cannot be restarted; create a new one');
    }
    callNative(() => this.#native.start(this.#onDeliveries, this.#config.workerCount));
    live.add(this.#native);
    this.#state = 'running';
    this.#observer.start();
    if (this.#outstanding > 0) this.#holdProcess();
    super.emit('initialized');
  }

  isReady(): boolean {
    return this.#state === 'running';
  }

  getConfig(): BufferedEventConfig {
    return structuredClone(this.#config);
  }

  emitEvent(type: string, payload: unknown, options?: EventOptions): Promise<string> {
    try {
      return Promise.resolve(this.#accept(type, payload, options));
    } catch (err) {
      const code = err instanceof BusError ? err.code : 'NATIVE_ERROR';
      this.#observer.rejected(code);
      return Promise.reject(err);
    }
  }

  override emit(event: IEvent, options?: Omit<EventOptions, 'correlationId'>): Promise<string>;
  override emit(eventName: string | symbol, ...args: any[]): boolean;
  override emit(event: unknown, ...args: any[]): Promise<string> | boolean {
    if (typeof event === 'string' || typeof event === 'symbol') return super.emit(event, ...args);
    if (event === null || typeof event !== 'object') {
      return Promise.reject(
        new BusError('INVALID_EVENT_TYPE', `emit() takes an event object with a type, got ${describe(event)}`, {
          field: 'event',
        }),
      );
    }
    const e = event as IEvent;
    const options = (args[0] ?? {}) as EventOptions;
    return this.emitEvent(e.type, e.payload, { ...options, correlationId: e.correlationId ?? options.correlationId });
  }

  registerHandler(eventType: string, handler: EventHandlerLike): () => void {
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot register a handler for '${String(eventType)}': the bus is shut down`);
    }
    const entry = this.#registry.add(eventType, handler);
    return () => this.#registry.removeEntry(entry);
  }

  unregisterHandler(eventType: string, handler?: EventHandlerLike): boolean {
    return this.#registry.remove(eventType, handler);
  }

  getMetrics(): EventSystemMetrics {
    return this.#observer.metrics();
  }

  async getHealthStatus(): Promise<HealthCheckResult> {
    return this.#observer.health(this.#state === 'running');
  }

  getWorkerStatistics(): WorkerStatistics {
    return this.#observer.workers();
  }

  async scaleWorkers(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > 20) {
      throw new BusError('INVALID_ARGUMENT', `worker count must be an integer between 1 and 20, got ${describe(count)}`, {
        field: 'count',
      });
    }
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', 'cannot scale a bus that is shutting down');
    }
    // Before initialize() only the configuration changes; the workers
    // start with it.
    if (this.#state === 'running') callNative(() => this.#native.scale(count));
    (this.#config as { workerCount: number }).workerCount = count;
  }

  shutdown(options?: ShutdownOptions): Promise<ShutdownReport> {
    const timeout = options?.timeout ?? this.#config.reliabilityLimits.gracefulShutdownTimeout;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
      return Promise.reject(
        new BusError('INVALID_ARGUMENT', `shutdown timeout must be a non-negative number of ms, got ${describe(timeout)}`, {
          field: 'timeout',
        }),
      );
    }
    this.#shutdown ??= this.#drainAndStop(timeout);
    return this.#shutdown;
  }

  // ---- intake ---------------------------------------------------------

  #accept(type: string, payload: unknown, options: EventOptions | undefined): string | Promise<string> {
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot emit '${String(type)}': the bus is shutting down`);
    }
    checkType(type);
    const priority = options?.priority;
    const lane = priority === undefined || priority === 'normal' ? 1 : priority === 'critical' ? 0 : priority === 'low' ? 2 : -1;
    if (lane < 0) {
      throw new BusError(
        'INVALID_PRIORITY',
        `priority must be 'critical', 'normal' or 'low', got ${describe(priority)}`,
        { field: 'priority' },
      );
    }
    const given = options?.correlationId;
    if (given !== undefined && typeof given !== 'string') {
      throw new BusError('INVALID_ARGUMENT', `correlationId must be a string, got ${describe(given)}`, {
        field: 'correlationId',
      });
    }
    const size = measurePayload(payload, this.#config.maxEventSize, type.length + (given?.length ?? 0));
    const id = `${this.#idPrefix}-${(this.#nextId++).toString(36)}`;
    const rec: EventRecord = {
      id,
      type,
      typeId: this.#registry.typeId(type),
      payload,
      lane,
      correlationId: given ?? id,
      timestamp: Date.now(),
      size,
      inFlight: 0,
    };
    const full = this.#fullBecause(size);
    if (full !== undefined) return this.#overflow(rec, full);
    const slot = this.#slots.add(rec);
    if (!this.#ring.push(lane, slot, rec.typeId, size)) {
      this.#slots.release(slot);
      return this.#overflow(rec, 'maxQueueSize');
    }
    this.#observer.accepted();
    if (this.#outstanding++ === 0 && this.#state === 'running') this.#holdProcess();
    if (this.#state === 'running' && this.#ring.claimWake()) this.#native.wake();
    return id;
  }

  #fullBecause(size: number): 'maxQueueSize' | 'maxMemoryMB' | undefined {
    if (this.#ring.depth() >= this.#config.maxQueueSize) return 'maxQueueSize';
    if (this.#ring.bytesQueued() + size > this.#maxMemoryBytes) return 'maxMemoryMB';
    return undefined;
  }

  /** The queue is full: handle inline (fallbackToSync) or refuse. Never drop. */
  #overflow(rec: EventRecord, limit: 'maxQueueSize' | 'maxMemoryMB'): Promise<string> {
    if (!this.#config.fallbackToSync) {
      throw new BusError('QUEUE_FULL', `queue is full (${limit}); event '${rec.type}' was not accepted`, {
        field: limit,
        limit: this.#config[limit],
      });
    }
    this.#observer.accepted();
    return new Promise((resolve) => {
      const handlers = this.#registry.forType(rec.typeId);
      const finish = (failures: number): void => {
        this.#observer.handledInline(failures > 0, handlers.length === 0);
        resolve(rec.id);
      };
      if (handlers.length === 0) return finish(0);
      const inline: DeliveryHost = {
        handlerFailed: (r, handler, error, attempt) => this.#reportFailure(r, handler, error, attempt),
        deliveryDone: (_slot, _rec, _handlerId, failures) => finish(failures),
      };
      runDelivery(inline, handlers, toHandlerEvent(rec, 0), -1, rec, 0, 0);
    });
  }

  // ---- delivery -------------------------------------------------------

  readonly #onDeliveries = (): void => this.#ring.drainDeliveries(this.#deliver);

  readonly #deliver = (slot: number, handlerId: number, attempt: number): void => {
    const rec = this.#slots.get(slot);
    if (rec === undefined) {
      // The two sides disagree about a slot: acknowledge so the window
      // does not leak, and say so.
      this.emit('worker_error', new BusError('NATIVE_ERROR', `delivery for unknown slot ${slot}`));
      this.#acks.push(slot, handlerId, OUTCOME.FAILED, 0);
      return;
    }
    rec.inFlight++;
    let handlers: readonly RegisteredHandler[];
    if (handlerId === 0) {
      handlers = this.#registry.forType(rec.typeId);
    } else {
      const one = this.#registry.byId(handlerId);
      handlers = one ? [one] : [];
    }
    if (handlers.length === 0) {
      this.#settled(slot, rec, handlerId, OUTCOME.NO_HANDLER, 0);
      return;
    }
    runDelivery(this.#host, handlers, toHandlerEvent(rec, attempt), slot, rec, handlerId, attempt);
  };

  readonly #host: DeliveryHost = {
    handlerFailed: (rec, handler, error, attempt) => this.#reportFailure(rec, handler, error, attempt),
    deliveryDone: (slot, rec, handlerId, failures) =>
      this.#settled(slot, rec, handlerId, failures ? OUTCOME.FAILED : OUTCOME.OK, failures),
  };

  #settled(slot: number, rec: EventRecord, handlerId: number, outcome: number, failures: number): void {
    this.#acks.push(slot, handlerId, outcome, failures);
    if (--rec.inFlight > 0) return;
    this.#slots.release(slot);
    this.#observer.finished();
    if (--this.#outstanding === 0) {
      this.#releaseProcess();
      this.#drained?.();
    }
  }

  #reportFailure(rec: EventRecord, handler: RegisteredHandler, error: unknown, retryCount: number): void {
    this.emit('handler_error', { event: toQueuedEvent(rec), handler: handler.name, error, retryCount });
  }

  // ---- lifecycle ------------------------------------------------------

  /** Keeps the event loop alive while accepted events are unfinished. */
  #holdProcess(): void {
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  #releaseProcess(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  async #drainAndStop(timeout: number): Promise<ShutdownReport> {
    const wasRunning = this.#state === 'running';
    this.#state = 'draining';
    const finishedBefore = this.#observer.finishedCount();
    if (wasRunning && this.#outstanding > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#drained = undefined;
    }
    const undelivered = this.#native.stop();
    live.delete(this.#native);
    this.#observer.stop();
    this.#acks.drain();
    const remaining = undelivered.map((slot) => {
      const rec = this.#slots.get(slot) as EventRecord;
      this.#slots.release(slot);
      this.#outstanding--;
      return toQueuedEvent(rec);
    });
    const inFlightAborted = [...this.#slots.entries()].filter(([, rec]) => rec.inFlight > 0).map(([, rec]) => toQueuedEvent(rec));
    this.#releaseProcess();
    this.#state = 'stopped';
    const report: ShutdownReport = {
      drained: this.#observer.finishedCount() - finishedBefore,
      remaining,
      inFlightAborted,
    };
    super.emit('shutdown', report);
    return report;
  }
}

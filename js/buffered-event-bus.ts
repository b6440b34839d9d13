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
import { CoarseClock, SlotTable } from './event-record';
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
  readonly #clock = new CoarseClock();
  readonly #registry: HandlerRegistry;
  readonly #acks: AckBuffer;
  readonly #observer: Observer;
  readonly #idPrefix = `${randomBytes(4).toString('hex')}-`;
  readonly #maxMemoryBytes: number;
  #nextId = 0;
  #wakeScheduled = false;
  /** Upper bounds of the ring's depth and bytes; see #fullBecause. */
  #depthBound = 0;
  #bytesBound = 0;
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
      throw new BusError('INVALID_PRIORITY', `priority must be 'critical', 'normal' or 'low', got ${describe(priority)}`, {
        field: 'priority',
      });
    }
    const given = options?.correlationId;
    if (given !== undefined && typeof given !== 'string') {
      throw new BusError('INVALID_ARGUMENT', `correlationId must be a string, got ${describe(given)}`, {
        field: 'correlationId',
      });
    }
    const size = measurePayload(payload, this.#config.maxEventSize, type.length + (given?.length ?? 0));
    const id = this.#idPrefix + (this.#nextId++).toString(36);
    const typeId = this.#registry.typeId(type);
    const slot = this.#slots.add(id, type, typeId, payload, lane, given, this.#clock.now());
    const full = this.#fullBecause(size);
    if (full !== undefined || !this.#ring.push(lane, slot, typeId, size)) {
      return this.#overflow(slot, full ?? 'maxQueueSize');
    }
    this.#observer.accepted();
    if (this.#outstanding++ === 0 && this.#state === 'running') this.#holdProcess();
    if (this.#state === 'running' && !this.#wakeScheduled) {
      this.#wakeScheduled = true;
      queueMicrotask(this.#wakeWorkers);
    }
    return id;
  }

  /**
   * Parked workers are woken once per synchronous run of emissions, not per
   * event: they then find the whole run in the ring instead of taking records
   * one by one while this thread is still writing them.
   */
  readonly #wakeWorkers = (): void => {
    this.#wakeScheduled = false;
    if (this.#state === 'running' && this.#ring.claimWake()) this.#native.wake();
  };

  /**
   * Reading the ring's depth costs atomic loads, so it is re-read only when
   * the last reading plus what was pushed since could reach a limit.
   */
  #fullBecause(size: number): 'maxQueueSize' | 'maxMemoryMB' | undefined {
    if (++this.#depthBound >= this.#config.maxQueueSize) {
      this.#depthBound = this.#ring.depth() + 1;
      if (this.#depthBound > this.#config.maxQueueSize) return 'maxQueueSize';
    }
    this.#bytesBound += size;
    if (this.#bytesBound > this.#maxMemoryBytes) {
      this.#bytesBound = this.#ring.bytesQueued() + size;
      if (this.#bytesBound > this.#maxMemoryBytes) return 'maxMemoryMB';
    }
    return undefined;
  }

  /** The queue is full: handle inline (fallbackToSync) or refuse. Never drop. */
  #overflow(slot: number, limit: 'maxQueueSize' | 'maxMemoryMB'): Promise<string> {
    const id = this.#slots.id(slot);
    const type = this.#slots.type(slot);
    this.#depthBound--;
    if (!this.#config.fallbackToSync) {
      this.#slots.release(slot);
      throw new BusError('QUEUE_FULL', `queue is full (${limit}); event '${type}' was not accepted`, {
        field: limit,
        limit: this.#config[limit],
      });
    }
    this.#observer.accepted();
    return new Promise((resolve) => {
      const handlers = this.#registry.forType(this.#slots.typeId(slot));
      const finish = (failures: number): void => {
        this.#slots.release(slot);
        this.#observer.handledInline(failures > 0, handlers.length === 0);
        resolve(id);
      };
      if (handlers.length === 0) return finish(0);
      const inline: DeliveryHost = {
        handlerFailed: (s, handler, error, attempt) => this.#reportFailure(s, handler, error, attempt),
        deliveryDone: (_slot, _handlerId, failures) => finish(failures),
      };
      runDelivery(inline, handlers, this.#slots.handlerEvent(slot, 0), slot, 0, 0);
    });
  }

  // ---- delivery -------------------------------------------------------

  readonly #onDeliveries = (): void => this.#ring.drainDeliveries(this.#deliver);

  readonly #deliver = (slot: number, handlerId: number, attempt: number): void => {
    if (!this.#slots.has(slot)) {
      // The two sides disagree about a slot: acknowledge so the window
      // does not leak, and say so.
      this.emit('worker_error', new BusError('NATIVE_ERROR', `delivery for unknown slot ${slot}`));
      this.#acks.push(slot, handlerId, OUTCOME.FAILED, 0);
      return;
    }
    this.#slots.started(slot);
    let handlers: readonly RegisteredHandler[];
    if (handlerId === 0) {
      handlers = this.#registry.forType(this.#slots.typeId(slot));
    } else {
      const one = this.#registry.byId(handlerId);
      handlers = one ? [one] : [];
    }
    if (handlers.length === 0) return this.#settled(slot, handlerId, OUTCOME.NO_HANDLER, 0);
    runDelivery(this.#host, handlers, this.#slots.handlerEvent(slot, attempt), slot, handlerId, attempt);
  };

  readonly #host: DeliveryHost = {
    handlerFailed: (slot, handler, error, attempt) => this.#reportFailure(slot, handler, error, attempt),
    deliveryDone: (slot, handlerId, failures) =>
      this.#settled(slot, handlerId, failures ? OUTCOME.FAILED : OUTCOME.OK, failures),
  };

  #settled(slot: number, handlerId: number, outcome: number, failures: number): void {
    this.#acks.push(slot, handlerId, outcome, failures);
    if (!this.#slots.settled(slot)) return;
    this.#slots.release(slot);
    this.#observer.finished();
    if (--this.#outstanding === 0) {
      this.#releaseProcess();
      this.#drained?.();
    }
  }

  #reportFailure(slot: number, handler: RegisteredHandler, error: unknown, retryCount: number): void {
    this.emit('handler_error', { event: this.#slots.queuedEvent(slot), handler: handler.name, error, retryCount });
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
      const event = this.#slots.queuedEvent(slot);
      this.#slots.release(slot);
      this.#outstanding--;
      return event;
    });
    const inFlightAborted = this.#slots
      .slots()
      .filter((slot) => this.#slots.running(slot))
      .map((slot) => this.#slots.queuedEvent(slot));
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

import { AsyncResource } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { serialize } from 'node:v8';
import type {
  BufferedEventBusService as PublicBus,
  BufferedEventBusOptions,
  BufferedEventConfig,
  BufferedEventConfigInput,
  DeadLetterEntry,
  DeadLetterPage,
  EventHandlerLike,
  EventOptions,
  EventSystemMetrics,
  HealthCheckResult,
  IEvent,
  QueuedEvent,
  ShutdownOptions,
  ShutdownReport,
  WorkerHandlerOptions,
  WorkerStatistics,
} from '../index';
import { AckBuffer, FATE, type FailureRecord, failureRecord, type FlushResult, OUTCOME } from './acks';
import { Arena } from './arena';
import { readConfigInput, resolveConfig } from './config';
import { Delivery, type DeliveryHost } from './delivery';
import { BusError, callNative, errorText, fromNative } from './errors';
import { CoarseClock, SlotTable } from './event-record';
import { checkType, describe, HandlerRegistry, type RegisteredHandler } from './handlers';
import { type IsolateEnvelope, IsolatePool, probeWorkerHandler, type WorkerHandlerSpec } from './isolates';
import { native, type NativeBus } from './native';
import { Observer } from './observer';
import { ENCODING } from './arena';
import { isFlatPayload, measurePayload } from './payload';

/** measurePayload, with what a hostile payload throws (a getter, a Proxy trap, nesting past the stack) as INVALID_PAYLOAD. */
function measure(payload: unknown, limit: number, overhead: number): number {
  try {
    return measurePayload(payload, limit, overhead);
  } catch (err) {
    if (err instanceof BusError) throw err;
    const why = err instanceof RangeError ? 'is nested too deeply to be measured' : `could not be read: ${errorText(err)}`;
    throw new BusError('INVALID_PAYLOAD', `payload ${why}`, { field: 'payload' });
  }
}
import { SharedRing } from './ring';
import { type SoloHost, SoloDeliveries } from './solo';
import { TimeoutQueue } from './timeouts';

type State = 'created' | 'running' | 'inline' | 'failed' | 'draining' | 'stopped';

interface Serialised {
  /** ENCODING.JSON or ENCODING.CLONE: the arena block's first byte. */
  tag: number;
  bytes: Uint8Array;
}

/** Buses whose native workers may be running, stopped on process exit. */
const live = new Set<NativeBus>();
process.on('exit', () => {
  // Env cleanup hooks do not run on a main-thread process.exit(); the
  // workers must be joined before the shared buffer goes away.
  for (const bus of live) bus.stop();
  live.clear();
});

/** Flags a main-thread delivery as an isolate's completion notice (src/core/engine/completion.rs). */
const NOTICE = 0x80000000;
/**
 * How long (ms) into a turn of the event loop the main thread keeps
 * refilling the window and running what came out, before leaving the rest
 * to the workers and the next turn.
 */
const REFILL_TURN_MS = 4;
const REMOTE_OUTCOME = 3;

/** Context carriers are dropped with their slot; no destroy hook is owed. */
const NO_DESTROY = { requireManualDestroy: true } as const;

/** The native half of each bus, for the test hooks in testing.ts. */
export const nativeOf = new WeakMap<object, NativeBus>();

/** A paging field of getDeadLetterQueue: absent, or an integer 0..2^32-1. */
function pageField(page: DeadLetterPage, field: 'offset' | 'limit'): number | undefined {
  let value: unknown;
  try {
    value = page[field];
  } catch (err) {
    throw new BusError('INVALID_ARGUMENT', `reading ${field} threw: ${errorText(err)}`, { field });
  }
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new BusError('INVALID_ARGUMENT', `${field} must be an integer from 0 to 4294967295, got ${describe(value)}`, { field });
  }
  return value;
}

/**
 * The native buffered event bus. See index.d.ts for the documented API.
 */
export class BufferedEventBusService extends EventEmitter implements PublicBus {
  #config: BufferedEventConfig;
  readonly #native: NativeBus;
  readonly #ring: SharedRing;
  readonly #slots = new SlotTable({ signalOf: (slot) => this.#fanOut[slot]?.signal ?? this.#solo.signal(slot) });
  readonly #clock: CoarseClock;
  readonly #registry: HandlerRegistry;
  readonly #acks: AckBuffer;
  readonly #observer: Observer;
  /** Deadlines of deliveries started under the current `handlerTimeout`. */
  #timeouts: TimeoutQueue;
  /** Queues of earlier `handlerTimeout` values, until their deliveries settle. */
  #oldTimeouts: TimeoutQueue[] = [];
  /** Running first deliveries (to every handler), by slot: at most one each. */
  readonly #fanOut: (Delivery | undefined)[] = [];
  /** Running first deliveries to the one handler of a type, without a timeout. */
  readonly #solo: SoloDeliveries;
  /** Running deliveries to one handler (retries, replays). */
  readonly #single = new Set<Delivery>();
  readonly #idPrefix = `${randomBytes(4).toString('hex')}-`;
  readonly #maxMemoryBytes: number;
  #nextId = 0;
  #state: State = 'created';
  #wakeScheduled = false;
  /** performance.now() when the current turn began delivering; see #complete. */
  #turnStarted = 0;
  #workerErrorsSeen = 0;
  /** Upper bounds of the ring's depth and bytes; see #fullBecause. */
  #depthBound = 0;
  #bytesBound = 0;
  /** Accepted events with open work (queued, running, waiting to retry). */
  #outstanding = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  /** Serialised events of isolate-handled types; made on the first worker handler. */
  #arena: Arena | undefined;
  #pool: IsolatePool | undefined;
  #workerSpecs: WorkerHandlerSpec[] = [];
  #drained: (() => void) | undefined;
  /** Set once native.stop() returned: no delivery starts after it. */
  #engineStopped = false;
  #shutdown: Promise<ShutdownReport> | undefined;

  constructor(config?: BufferedEventConfigInput | BufferedEventBusOptions) {
    super();
    this.#config = resolveConfig(config);
    const words = SharedRing.allocate(this.#config.maxQueueSize, this.#config.concurrency);
    this.#native = callNative(() => new native.NativeBus(this.#config, words));
    nativeOf.set(this, this.#native);
    this.#ring = new SharedRing(words);
    this.#clock = new CoarseClock(() => this.#native.elapsedUs());
    this.#maxMemoryBytes = this.#config.maxMemoryMB * 1024 * 1024;
    this.#registry = new HandlerRegistry(
      (typeId, count) => this.#native.setHandlerCount(typeId, count),
      (typeId, type) => this.#native.setTypeName(typeId, type),
    );
    this.#acks = new AckBuffer(this.#ring.handoff, this.#complete, this.#applyFates, this.#afterRefill);
    this.#observer = new Observer(this.#config, this.#native, this.#ring);
    this.#timeouts = new TimeoutQueue(this.#config.handlerTimeout);
    this.#solo = new SoloDeliveries(this.#host);
  }

  async initialize(): Promise<void> {
    if (this.#state === 'running' || this.#state === 'inline') return;
    if (this.#state !== 'created') {
      throw new BusError('INVALID_STATE', 'a bus that was shut down cannot be restarted; create a new one');
    }
    try {
      callNative(() => this.#native.start(this.#onDeliveries, this.#config.workerCount));
    } catch (err) {
      return this.#workersUnavailable(fromNative(err));
    }
    live.add(this.#native);
    this.#state = 'running';
    this.#startMonitoring();
    if (this.#outstanding > 0) this.#holdProcess();
    super.emit('initialized');
  }

  isReady(): boolean {
    return this.#state === 'running' || this.#state === 'inline';
  }

  getConfig(): BufferedEventConfig {
    return structuredClone(this.#config);
  }

  async updateConfig(partial: BufferedEventConfigInput | BufferedEventBusOptions): Promise<void> {
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', 'cannot update the configuration of a bus that is shutting down');
    }
    const { tree, problems } = readConfigInput(partial);
    const next = callNative(() => this.#native.updateConfig(tree, problems)) as BufferedEventConfig;
    const before = this.#config;
    this.#config = next;
    if (next.handlerTimeout !== before.handlerTimeout) {
      this.#oldTimeouts = this.#oldTimeouts.filter((q) => !q.idle());
      this.#oldTimeouts.push(this.#timeouts);
      this.#timeouts = new TimeoutQueue(next.handlerTimeout);
      this.#pool?.setHandlerTimeout(next.handlerTimeout);
    }
    this.#observer.reconfigure(next);
    if (next.workerCount !== before.workerCount && this.#state === 'running') {
      callNative(() => this.#native.scale(next.workerCount));
    }
  }

  emitEvent(type: string, payload: unknown, options?: EventOptions): Promise<string> {
    try {
      return Promise.resolve(this.#accept(type, payload, options));
    } catch (err) {
      this.#observer.rejected(err instanceof BusError ? err.code : 'NATIVE_ERROR');
      return Promise.reject(err);
    }
  }

  override emit(event: IEvent, options?: Omit<EventOptions, 'correlationId'>): Promise<string>;
  override emit(eventName: string | symbol, ...args: any[]): boolean;
  override emit(event: unknown, ...args: any[]): Promise<string> | boolean {
    if (typeof event === 'string' && this.#registry.has(event) && this.listenerCount(event) === 0) {
      // EventEmitter's emit would return false and run nothing: an event
      // type with handlers and no listener is a mistaken emitEvent call.
      throw new BusError(
        'INVALID_ARGUMENT',
        `emit('${event}', ...) is EventEmitter's emit and runs no handler; use emitEvent('${event}', payload) or emit(eventObject)`,
        { field: 'event' },
      );
    }
    if (typeof event === 'string' || typeof event === 'symbol') return super.emit(event, ...args);
    if (event === null || typeof event !== 'object') {
      return Promise.reject(
        new BusError('INVALID_EVENT_TYPE', `emit() takes an event object with a type, got ${describe(event)}`, {
          field: 'event',
        }),
      );
    }
    let type: unknown;
    let payload: unknown;
    let correlationId: unknown;
    try {
      ({ type, payload, correlationId } = event as IEvent);
    } catch (err) {
      return Promise.reject(new BusError('INVALID_ARGUMENT', `reading the event object threw: ${errorText(err)}`, { field: 'event' }));
    }
    const options = args[0] as EventOptions | undefined;
    if (options !== undefined && (options === null || typeof options !== 'object')) return this.emitEvent(type as string, payload, options);
    return this.emitEvent(type as string, payload, { ...options, correlationId: (correlationId as string | undefined) ?? options?.correlationId });
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

  async registerWorkerHandler(eventType: string, modulePath: string, options: WorkerHandlerOptions = {}): Promise<() => void> {
    if (options === null || typeof options !== 'object') {
      throw new BusError('INVALID_ARGUMENT', `options must be an object like { exportName: 'handle' }, got ${describe(options)}`, { field: 'options' });
    }
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot register a handler for '${String(eventType)}': the bus is shut down`);
    }
    checkType(eventType);
    if (typeof modulePath !== 'string' || modulePath.length === 0) {
      throw new BusError('INVALID_ARGUMENT', `modulePath must be a non-empty string, got ${describe(modulePath)}`, { field: 'modulePath' });
    }
    const exportName = options.exportName ?? 'default';
    if (typeof exportName !== 'string' || exportName.length === 0) {
      throw new BusError('INVALID_ARGUMENT', `exportName must be a non-empty string, got ${describe(exportName)}`, { field: 'exportName' });
    }
    let resolved: string;
    try {
      resolved = require.resolve(path.resolve(modulePath));
    } catch (err) {
      throw new BusError('HANDLER_MODULE_ERROR', `worker handler module ${modulePath} cannot be found: ${(err as Error).message}`, {
        modulePath,
      });
    }
    await probeWorkerHandler(resolved, exportName);
    if (this.#arena === undefined) {
      // Before anything is registered: a failure leaves no trace.
      try {
        this.#arena = new Arena(this.#maxMemoryBytes);
      } catch (err) {
        throw new BusError('INVALID_CONFIG', `maxMemoryMB (${this.#config.maxMemoryMB}) cannot be allocated for worker isolates: ${errorText(err)}`, {
          field: 'maxMemoryMB',
          value: this.#config.maxMemoryMB,
        });
      }
    }
    const name = `${path.basename(resolved)}#${exportName}`;
    const entry = this.#registry.addWorker(eventType, name);
    const spec: WorkerHandlerSpec = { id: entry.id, type: eventType, name, modulePath: resolved, exportName };
    this.#workerSpecs.push(spec);
    this.#native.setTypeIsolated(this.#registry.typeId(eventType), true);
    this.#pool ??= new IsolatePool(
      { busId: this.#native.id, arena: this.#arena.buffer, concurrency: this.#config.concurrency, handlerTimeout: this.#config.handlerTimeout },
      this.#config.workerIsolates,
      {
        native: this.#native,
        handlers: () => this.#workerSpecs,
        handlerName: (id) => this.#registry.byId(id)?.name ?? `handler #${id}`,
        restartDelay: () => this.#config.reliabilityLimits.workerRestartDelay,
        onError: (err) => this.#notify('worker_error', err),
      },
    );
    this.#pool.addHandler(spec);
    return () => {
      this.#registry.removeEntry(entry);
      this.#workerSpecs = this.#workerSpecs.filter((s) => s !== spec);
      this.#pool?.removeHandler(spec.id);
    };
  }

  getMetrics(): EventSystemMetrics {
    return this.#observer.metrics();
  }

  async getHealthStatus(): Promise<HealthCheckResult> {
    return this.#observer.health(this.isReady(), this.#pool);
  }

  metricsText(): string {
    return this.#observer.metricsText();
  }

  getWorkerStatistics(): WorkerStatistics {
    return this.#observer.workers(this.#pool);
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

  getDeadLetterQueue(page?: DeadLetterPage): DeadLetterEntry[] {
    let offset: number | undefined;
    let limit: number | undefined;
    if (page !== undefined) {
      if (page === null || typeof page !== 'object') {
        throw new BusError('INVALID_ARGUMENT', `getDeadLetterQueue takes { offset, limit }, got ${describe(page)}`, { field: 'page' });
      }
      offset = pageField(page, 'offset');
      limit = pageField(page, 'limit');
    }
    return this.#native.deadLetters(offset, limit).map((d) => {
      const errors = d.errors as DeadLetterEntry['errors'];
      const last = errors[errors.length - 1];
      const event = this.#slots.queuedEvent(d.slot);
      return {
        id: d.id,
        event,
        type: event.type,
        payload: event.payload,
        correlationId: event.correlationId,
        handler: d.handler,
        attempts: d.attempts,
        lastError: { message: last?.message ?? '', name: last?.name ?? 'Error', stack: last?.stack ?? undefined },
        errors,
        timestamp: d.timestamp,
      };
    });
  }

  replayDeadLetter(id?: number): number {
    this.#checkLetterId(id, 'replayDeadLetter');
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', 'cannot replay dead letters on a bus that is shutting down');
    }
    const replayed = this.#native.replayDeadLetters(id);
    for (const d of replayed) {
      this.#slots.removeLetter(d.slot);
      this.#addWork(d.slot);
    }
    return replayed.length;
  }

  removeDeadLetter(id: number): boolean {
    this.#checkLetterId(id, 'removeDeadLetter');
    return this.#dropLetters(this.#native.removeDeadLetters(id)) > 0;
  }

  clearDeadLetterQueue(): number {
    return this.#dropLetters(this.#native.removeDeadLetters());
  }

  shutdown(options?: ShutdownOptions): Promise<ShutdownReport> {
    const timeout = options?.timeout ?? this.#config.reliabilityLimits.gracefulShutdownTimeout;
    // Timers fire at once past 2^31 - 1 ms.
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0 || timeout > 2_147_483_647) {
      return Promise.reject(
        new BusError('INVALID_ARGUMENT', `shutdown timeout must be a number of ms between 0 and 2147483647, got ${describe(timeout)}`, {
          field: 'timeout',
        }),
      );
    }
    this.#shutdown ??= this.#drainAndStop(timeout);
    return this.#shutdown;
  }

  // ---- intake ---------------------------------------------------------

  #accept(type: string, payload: unknown, options: EventOptions | undefined): string | Promise<string> {
    const state = this.#state;
    if (state === 'draining' || state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot emit '${String(type)}': the bus is shutting down`);
    }
    if (state === 'failed') {
      throw new BusError('WORKERS_UNAVAILABLE', 'no native worker could start and fallbackToSync is off');
    }
    checkType(type);
    let priority: unknown;
    let given: unknown;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw new BusError('INVALID_ARGUMENT', `options must be an object like { priority: 'critical' }, got ${describe(options)}`, { field: 'options' });
      }
      try {
        priority = options.priority;
        given = options.correlationId;
      } catch (err) {
        throw new BusError('INVALID_ARGUMENT', `reading options threw: ${errorText(err)}`, { field: 'options' });
      }
    }
    const lane = priority === undefined || priority === 'normal' ? 1 : priority === 'critical' ? 0 : priority === 'low' ? 2 : -1;
    if (lane < 0) {
      throw new BusError('INVALID_PRIORITY', `priority must be 'critical', 'normal' or 'low', got ${describe(priority)}`, {
        field: 'priority',
      });
    }
    if (given !== undefined && typeof given !== 'string') {
      throw new BusError('INVALID_ARGUMENT', `correlationId must be a string, got ${describe(given)}`, {
        field: 'correlationId',
      });
    }
    let size = measure(payload, this.#config.maxEventSize, type.length + (given?.length ?? 0));
    const id = this.#idPrefix + (this.#nextId++).toString(36);
    const typeId = this.#registry.typeId(type);
    const timestamp = this.#clock.now();
    const isolated = this.#registry.isIsolated(typeId);
    let serialised: Serialised | undefined;
    if (isolated) {
      // Serialised once, here: isolates read these bytes in place, and
      // maxEventSize is exact for them.
      serialised = this.#serialise({ id, type, payload, lane, correlationId: (given as string | undefined) ?? id, timestamp });
      size = serialised.bytes.length + 1;
    }
    const slot = this.#slots.add(id, type, typeId, payload, lane, given as string | undefined, timestamp);
    // Handlers (retries and replays included) run in the emitter's async
    // context, as the synchronous bus runs them: AsyncLocalStorage stores
    // such as a request id reach them. Isolates cannot share it.
    if (this.#config.propagateContext && !isolated) this.#slots.setContext(slot, new AsyncResource('BootifyEvent', NO_DESTROY));
    if (state === 'inline' && !isolated) return this.#runInline(slot);
    let full = this.#fullBecause(size);
    let arena = 0;
    if (serialised !== undefined && full === undefined) {
      arena = (this.#arena as Arena).store(serialised.tag, serialised.bytes);
      if (arena < 0) full = 'maxMemoryMB';
      else this.#slots.setArena(slot, arena, size);
    }
    if (full !== undefined || !this.#ring.push(lane, slot, typeId, size, this.#clock.engineUs, arena)) {
      return this.#overflow(slot, full ?? 'maxQueueSize', isolated);
    }
    if (isolated) this.#pool?.ensureStarted();
    this.#observer.accepted();
    if (this.#outstanding++ === 0 && state === 'running') this.#holdProcess();
    if (state === 'running' && !this.#wakeScheduled) {
      this.#wakeScheduled = true;
      queueMicrotask(this.#wakeWorkers);
    }
    return id;
  }

  /**
   * An event as isolates read it. A flat payload goes as JSON (4x cheaper,
   * and exact for strings, numbers and booleans); anything else as a
   * structured clone, so Dates, Maps and the like survive.
   */
  #serialise(envelope: IsolateEnvelope): Serialised {
    const flat = isFlatPayload(envelope.payload);
    const bytes = flat ? Buffer.from(JSON.stringify(envelope)) : serialize(envelope);
    const size = bytes.length + 1;
    if (size > this.#config.maxEventSize) {
      throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${this.#config.maxEventSize} bytes): ${size} bytes serialised`, {
        field: 'maxEventSize',
        limit: this.#config.maxEventSize,
        size,
      });
    }
    return { tag: flat ? ENCODING.JSON : ENCODING.CLONE, bytes };
  }

  /**
   * A delivery of a type handled in isolates reached this thread: the event
   * was emitted before the type's worker handler was registered, so it has
   * no serialised bytes. Serialise it now and send it on; if that cannot
   * be done, it fails like a handler failure (retried, then dead-lettered).
   */
  #forward(slot: number, handlerId: number, attempt: number): void {
    let error: unknown;
    try {
      const e = this.#slots.queuedEvent(slot);
      const { tag, bytes } = this.#serialise({ id: e.id, type: e.type, payload: e.payload, lane: this.#slots.lane(slot), correlationId: e.correlationId, timestamp: e.timestamp });
      const offset = (this.#arena as Arena).store(tag, bytes);
      if (offset < 0) throw new BusError('QUEUE_FULL', `no room for the event in maxMemoryMB (${this.#config.maxMemoryMB} MB) of isolate memory`, { field: 'maxMemoryMB' });
      this.#slots.setArena(slot, offset, bytes.length + 1);
      this.#native.reroute(slot, handlerId, offset, bytes.length + 1);
      this.#pool?.ensureStarted();
      return;
    } catch (err) {
      error = err;
    }
    const handler = this.#registry.forType(this.#slots.typeId(slot))[0] ?? this.#registry.byId(handlerId);
    if (handler === undefined) return this.#unhandled(slot, handlerId);
    this.#handlerFailed(slot, handlerId, attempt, handler, error, false);
    this.#deliveryEnded(slot, handlerId, true);
  }

  #unhandled(slot: number, handlerId: number): void {
    this.#acks.push(slot, handlerId, OUTCOME.NO_HANDLER, false);
    // A first delivery with no handler: the event reached nobody. (A
    // retry whose handler was removed ends that handler's work only.)
    this.#finishWork(slot, handlerId === 0 ? 'unhandled' : 'done');
  }

  /**
   * Parked workers are woken once per synchronous run of emissions, not per
   * event: they then find the whole run in the ring instead of taking records
   * one by one while this thread is still writing them.
   */
  readonly #wakeWorkers = (): void => {
    this.#wakeScheduled = false;
    // Once per run too: the native side samples the tails for the input rate.
    this.#ring.publishTails();
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

  /**
   * The queue is full: handle inline (fallbackToSync) or refuse. Never
   * drop. Types handled in isolates cannot run inline: always refused.
   */
  #overflow(slot: number, limit: 'maxQueueSize' | 'maxMemoryMB', isolated = false): Promise<string> {
    this.#depthBound--;
    if (!this.#config.fallbackToSync || isolated) {
      const type = this.#slots.type(slot);
      this.#release(slot);
      throw new BusError('QUEUE_FULL', `queue is full (${limit}); event '${type}' was not accepted`, {
        field: limit,
        limit: this.#config[limit],
      });
    }
    return this.#runInline(slot);
  }

  /**
   * Runs an event's handlers on this thread and resolves once they settle:
   * for a full queue with `fallbackToSync`, or when no worker could start.
   * The caller is awaiting it, so it runs once, under `handlerTimeout`; a
   * failure (or timeout) is reported and counted, and the emission rejects
   * with `HANDLER_FAILED` carrying it: the caller holds the event.
   */
  #runInline(slot: number): Promise<string> {
    this.#observer.accepted();
    const id = this.#slots.id(slot);
    const type = this.#slots.type(slot);
    return new Promise((resolve, reject) => {
      const handlers = this.#registry.forType(this.#slots.typeId(slot));
      let firstError: unknown;
      const finish = (failures: number): void => {
        this.#slots.release(slot);
        this.#observer.handledInline(failures > 0);
        if (failures === 0) return resolve(id);
        reject(
          new BusError('HANDLER_FAILED', `event '${type}' was handled inline (the queue was full or no worker ran) and a handler failed: ${errorText(firstError)}`, {
            eventId: id,
            cause: firstError,
          }),
        );
      };
      if (handlers.length === 0) return finish(0);
      const host: DeliveryHost = {
        handlerFailed: (d, handler, error, timedOut) => {
          if (d.failures === 1) firstError = error;
          this.#emitHandlerError(d.slot, handler, error, 0, timedOut);
        },
        deliveryDone: (d) => finish(d.failures),
      };
      const delivery = new Delivery(host, handlers, slot, 0, 0, this.#timeouts.deadline());
      this.#timeouts.track(delivery);
      delivery.run(this.#slots.event(slot), this.#slots.context(slot));
    });
  }

  async #workersUnavailable(err: BusError): Promise<void> {
    super.emit('worker_error', err);
    if (!this.#config.fallbackToSync) {
      this.#state = 'failed';
      throw err;
    }
    // Handle everything on this thread from now on, starting with what
    // was queued before initialize().
    this.#state = 'inline';
    this.#startMonitoring();
    super.emit('initialized');
    const queued = this.#native.stop().filter((u) => u.handler === 0);
    await Promise.all(
      queued.map((u) => {
        this.#outstanding--;
        return this.#runInline(u.slot);
      }),
    );
  }

  // ---- delivery -------------------------------------------------------

  readonly #onDeliveries = (): void => {
    // A notification queued before the engine stopped: what it announced
    // was collected by #drainAndStop and must never start.
    if (this.#engineStopped) return;
    this.#turnStarted = performance.now();
    this.#ring.handoff.drain(this.#deliver);
    const errors = this.#ring.workerErrors();
    if (errors !== this.#workerErrorsSeen) {
      this.#workerErrorsSeen = errors;
      for (const e of this.#native.takeWorkerErrors()) {
        const err = new BusError('WORKER_PANIC', `native worker ${e.worker} panicked: ${e.message}`, {
          worker: e.worker,
          requeued: e.requeued,
        });
        this.#notify('worker_error', err);
      }
    }
  };

  /** Deliveries a refill (see #complete) may have published: run them in this turn. */
  readonly #afterRefill = (): void => {
    if (this.#engineStopped) return;
    this.#ring.handoff.drain(this.#deliver);
  };

  readonly #deliver = (slot: number, handlerId: number, attempt: number, retries: number, letters: number): void => {
    if ((handlerId & NOTICE) !== 0) return this.#isolateFinished(slot, handlerId & ~NOTICE, retries, letters);
    if (!this.#slots.has(slot)) {
      // The two sides disagree about a slot: acknowledge so the window
      // does not leak, and say so.
      this.#notify('worker_error', new BusError('NATIVE_ERROR', `delivery for unknown slot ${slot}`));
      this.#acks.push(slot, handlerId, OUTCOME.FAILED, false);
      return;
    }
    if (this.#registry.isIsolated(this.#slots.typeId(slot))) return this.#forward(slot, handlerId, attempt);
    let handlers: readonly RegisteredHandler[];
    if (handlerId === 0) {
      handlers = this.#registry.forType(this.#slots.typeId(slot));
    } else {
      const one = this.#registry.byId(handlerId);
      handlers = one ? [one] : [];
    }
    if (handlers.length === 0) return this.#unhandled(slot, handlerId);
    this.#slots.started(slot);
    if (handlerId === 0 && handlers.length === 1 && this.#config.handlerTimeout === 0) {
      return this.#solo.run(slot, handlers[0], this.#slots.event(slot), this.#slots.context(slot));
    }
    const delivery = new Delivery(this.#host, handlers, slot, handlerId, attempt, this.#timeouts.deadline());
    if (handlerId === 0) this.#fanOut[slot] = delivery;
    else this.#single.add(delivery);
    this.#timeouts.track(delivery);
    delivery.run(this.#slots.eventFor(slot, delivery), this.#slots.context(slot));
  };

  readonly #host: DeliveryHost & SoloHost = {
    handlerFailed: (delivery, handler, error, timedOut) => {
      this.#handlerFailed(delivery.slot, delivery.handlerId, delivery.attempt, handler, error, timedOut);
    },
    deliveryDone: (delivery) => {
      if (delivery.handlerId === 0) this.#fanOut[delivery.slot] = undefined;
      else this.#single.delete(delivery);
      this.#deliveryEnded(delivery.slot, delivery.handlerId, delivery.failures > 0);
    },
    soloSettled: (slot, handler, failed, error) => {
      if (failed) this.#handlerFailed(slot, 0, 0, handler, error, false);
      this.#deliveryEnded(slot, 0, failed);
    },
  };

  #handlerFailed(slot: number, delivery: number, attempt: number, handler: RegisteredHandler, error: unknown, timedOut: boolean): void {
    this.#acks.fail(failureRecord(slot, delivery, handler, error, timedOut));
    this.#emitHandlerError(slot, handler, error, attempt, timedOut);
  }

  #deliveryEnded(slot: number, delivery: number, failed: boolean): void {
    this.#slots.ended(slot);
    this.#acks.push(slot, delivery, failed ? OUTCOME.FAILED : OUTCOME.OK, failed);
    // With failures, the open work ends once their fates are known.
    if (!failed) this.#finishWork(slot);
  }

  /**
   * With a scheduled flush, the native side also fills the room the
   * acknowledgements freed in the window, on this thread, and #afterRefill
   * runs what it published in this same turn of the event loop. Bounded in
   * time per turn, so handlers that settle in microtasks (or burn CPU)
   * cannot keep the loop from its other work; workers take over from there.
   */
  readonly #complete = (count: number, failures: FailureRecord[] | undefined, scheduled: boolean): { fates: number[]; evicted: number[] } | null => {
    const refill =
      scheduled &&
      (this.#state === 'running' || this.#state === 'draining') &&
      performance.now() - this.#turnStarted < REFILL_TURN_MS;
    try {
      return this.#native.complete(count, failures, refill) ?? null;
    } catch (err) {
      this.#notify('worker_error', fromNative(err));
      return null;
    }
  };

  readonly #applyFates = (result: FlushResult): void => {
    result.failures.forEach((failure, i) => {
      const fate = result.fates[i];
      if (fate === FATE.RETRY) this.#slots.addWork(failure.slot);
      else if (fate === FATE.DEAD_LETTER) this.#slots.addLetter(failure.slot);
    });
    for (const slot of result.settled) this.#finishWork(slot);
    for (const slot of result.evicted) {
      this.#slots.removeLetter(slot);
      this.#releaseIfIdle(slot);
    }
  };

  /**
   * An isolate finished a delivery of the event; the native side already
   * counted its outcome and decided its failures' fates: keep the books
   * and acknowledge, which releases the delivery's place in the window.
   */
  #isolateFinished(slot: number, handlerId: number, retries: number, letters: number): void {
    this.#acks.push(slot, handlerId >>> 0, REMOTE_OUTCOME, false);
    if (!this.#slots.has(slot)) return;
    if (retries > 0) this.#slots.addWork(slot, retries);
    for (let i = 0; i < letters; i++) this.#slots.addLetter(slot);
    this.#finishWork(slot);
  }

  #emitHandlerError(slot: number, handler: RegisteredHandler, error: unknown, retryCount: number, timedOut: boolean): void {
    this.#notify('handler_error', { event: this.#slots.queuedEvent(slot), handler: handler.name, error, retryCount, timedOut });
  }

  /**
   * Emits from inside the bus's own bookkeeping. A listener that throws
   * must not leave that half done (a delivery never acknowledged, a drain
   * cut short), so its error is rethrown on a fresh stack, where it
   * surfaces as an uncaught exception as any listener's would.
   */
  #notify(event: 'handler_error' | 'worker_error', value: unknown): void {
    try {
      super.emit(event, value);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  // ---- bookkeeping ----------------------------------------------------

  #addWork(slot: number): void {
    if (!this.#slots.hasWork(slot) && this.#outstanding++ === 0 && this.#state === 'running') this.#holdProcess();
    this.#slots.addWork(slot);
  }

  /**
   * One piece of an event's open work ended: `done` when it ran,
   * `abandoned` when it never ran (left over at shutdown: reported there,
   * counted neither as success nor failure), `unhandled` when no handler
   * was registered for it (counted as such).
   */
  #finishWork(slot: number, how: 'done' | 'abandoned' | 'unhandled' = 'done'): void {
    if (!this.#slots.finishWork(slot)) return;
    if (how === 'unhandled') this.#observer.unhandled();
    else if (how === 'done') this.#observer.finished(this.#slots.hasLetters(slot));
    this.#releaseIfIdle(slot);
    if (--this.#outstanding === 0) {
      this.#releaseProcess();
      this.#drained?.();
    }
  }

  #releaseIfIdle(slot: number): void {
    if (this.#slots.idle(slot)) this.#release(slot);
  }

  /** Frees the slot and the event's arena block, if any. */
  #release(slot: number): void {
    const block = this.#slots.arenaOf(slot);
    if (block) this.#arena?.free(block[0], block[1]);
    this.#slots.release(slot);
  }

  #dropLetters(letters: { slot: number }[]): number {
    for (const d of letters) {
      this.#slots.removeLetter(d.slot);
      this.#releaseIfIdle(d.slot);
    }
    return letters.length;
  }

  #checkLetterId(id: number | undefined, method: string): void {
    if (id !== undefined && (!Number.isInteger(id) || id < 1)) {
      throw new BusError('INVALID_ARGUMENT', `${method} takes a dead-letter id (a positive integer), got ${describe(id)}`, {
        field: 'id',
      });
    }
  }

  #startMonitoring(): void {
    this.#observer.start(
      (event, value) => super.emit(event, value),
      (event) => this.listenerCount(event) > 0,
      () => this.isReady(),
      () => this.#pool,
    );
  }

  /** Keeps the event loop alive while accepted events have open work. */
  #holdProcess(): void {
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  #releaseProcess(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  // ---- shutdown -------------------------------------------------------

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
    this.#engineStopped = true;
    live.delete(this.#native);
    // Deliveries already handed over but not yet started never will be:
    // they are reported with what never started, not as aborted.
    this.#ring.handoff.drain((slot, handlerId, attempt, retries, letters) => {
      if ((handlerId & NOTICE) !== 0) return this.#isolateFinished(slot, handlerId & ~NOTICE, retries, letters);
      if (this.#slots.has(slot)) undelivered.push({ slot, handler: handlerId, attempt });
    });
    if (this.#pool) {
      await this.#pool.stop();
      // Isolates that finished deliveries before they were terminated left
      // notices: those events are done, not aborted.
      this.#ring.handoff.drain((slot, handlerId, _attempt, retries, letters) => {
        if ((handlerId & NOTICE) !== 0) this.#isolateFinished(slot, handlerId & ~NOTICE, retries, letters);
      });
    }
    this.#observer.stop();
    this.#timeouts.stop();
    for (const q of this.#oldTimeouts) q.stop();
    this.#acks.drain();
    const remaining: QueuedEvent[] = undelivered.map((u) => {
      const event = this.#slots.queuedEvent(u.slot);
      if (u.handler !== 0) {
        event.handler = this.#registry.byId(u.handler)?.name ?? `handler #${u.handler}`;
        event.retryCount = u.attempt;
      }
      this.#finishWork(u.slot, 'abandoned');
      return event;
    });
    const aborted = new BusError('SHUTTING_DOWN', 'the bus was shut down before this handler settled');
    for (const delivery of [...this.#fanOut, ...this.#single]) delivery?.abort(aborted);
    this.#solo.abortAll(aborted);
    // Whatever still has open work was running: here, or in an isolate
    // (terminated above).
    const inFlightAborted: QueuedEvent[] = this.#slots
      .slots()
      .filter((slot) => this.#slots.hasWork(slot))
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

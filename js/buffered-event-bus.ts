import { EventEmitter } from 'node:events';
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
import { Books } from './books';
import { readConfigInput, resolveConfig } from './config';
import { Dispatcher } from './dispatch';
import { BusError, callNative, errorText, fromNative } from './errors';
import { SlotTable } from './event-record';
import { describe, HandlerRegistry } from './handlers';
import { checkLetterId, Intake, readPage, type State } from './intake';
import { WorkerHandlers } from './isolates/handlers';
import { Journal } from './journal';
import { Streams } from './streams';
import { BusLog, readLogger } from './logs';
import { native, type NativeBus } from './native';
import { Observer } from './observer';
import type { BusParts } from './parts';
import { SharedRing } from './ring';

/** Buses whose native workers may be running, stopped on process exit. */
const live = new Set<NativeBus>();
process.on('exit', () => {
  // Env cleanup hooks do not run on a main-thread process.exit(); the
  // workers must be joined before the shared buffer goes away.
  for (const bus of live) bus.stop();
  live.clear();
});

/** The native half of each bus, for the test hooks in testing.ts. */
export const nativeOf = new WeakMap<object, NativeBus>();

/**
 * The native buffered event bus. See index.d.ts for the documented API.
 * This class is the API, intake and lifecycle; `Dispatcher` runs what
 * the engine hands this thread, `Books` keeps each event's open work, and
 * `WorkerHandlers` the handlers that run in worker isolates.
 */
export class BufferedEventBusService extends EventEmitter implements PublicBus {
  #config: BufferedEventConfig;
  readonly #native: NativeBus;
  readonly #ring: SharedRing;
  readonly #slots = new SlotTable({ signalOf: (slot) => this.#dispatch.signalOf(slot) });
  readonly #registry: HandlerRegistry;
  readonly #observer: Observer;
  readonly #books: Books;
  readonly #workers: WorkerHandlers;
  readonly #dispatch: Dispatcher;
  readonly #intake: Intake;
  readonly #log: BusLog;
  /** A durable bus's journal (`durability` other than 'memory'). */
  readonly #journal: Journal | undefined;
  /** A bus on Redis (`backend.type: 'redis'`). */
  readonly #streams: Streams | undefined;
  /** Why initialize() could not connect to Redis: the bus cannot start. */
  #backendFailure: BusError | undefined;
  #starting: Promise<void> | undefined;
  #state: State = 'created';
  #shutdown: Promise<ShutdownReport> | undefined;

  constructor(config?: BufferedEventConfigInput | BufferedEventBusOptions) {
    super();
    this.#config = resolveConfig(config);
    const logger = readLogger(config);
    const words = SharedRing.allocate(this.#config.maxQueueSize, this.#config.concurrency);
    this.#native = callNative(() => new native.NativeBus(this.#config, words));
    nativeOf.set(this, this.#native);
    this.#log = new BusLog(this.#native, logger);
    this.#ring = new SharedRing(words);
    this.#registry = new HandlerRegistry(
      (typeId, count) => {
        this.#native.setHandlerCount(typeId, count);
        if (this.#state === 'running') this.#journal?.handlersChanged(typeId, count);
        this.#streams?.handlersChanged();
      },
      (typeId, type) => this.#native.setTypeName(typeId, type),
    );
    this.#observer = new Observer(this.#config, this.#native, this.#ring);
    const notify = (event: 'handler_error' | 'worker_error', value: unknown): void => this.#notify(event, value);
    this.#workers = new WorkerHandlers({
      native: this.#native,
      registry: this.#registry,
      config: () => this.#config,
      onError: (err) => notify('worker_error', err),
    });
    this.#books = new Books(
      this.#slots,
      this.#observer,
      (slot) => {
        const block = this.#slots.arenaOf(slot);
        if (block) this.#workers.free(block[0], block[1]);
      },
      () => this.#state === 'running',
    );
    const parts: BusParts = {
      native: this.#native,
      ring: this.#ring,
      slots: this.#slots,
      registry: this.#registry,
      observer: this.#observer,
      books: this.#books,
      workers: this.#workers,
      log: this.#log,
      config: () => this.#config,
    };
    this.#dispatch = new Dispatcher({
      ...parts,
      refilling: () => this.#state === 'running' || this.#state === 'draining',
      beforeReports: () => this.#journal?.flush(),
      notify,
    });
    const { durability } = this.#config;
    this.#journal = durability === 'memory' ? undefined : new Journal(parts, durability === 'fsync');
    this.#observer.journal = this.#journal;
    this.#streams = this.#config.backend.type === 'redis' ? new Streams({ ...parts, dispatchNew: this.#dispatchNew }) : undefined;
    this.#observer.streams = this.#streams;
    this.#intake = new Intake({ ...parts, dispatch: this.#dispatch, journal: this.#journal, streams: this.#streams, state: () => this.#state });
  }

  /** Entries taken from Redis are in the ring: dispatched here, else by a worker. */
  readonly #dispatchNew = (): void => {
    if (this.#state !== 'running' && this.#state !== 'draining') return;
    this.#ring.publishTails();
    if (!this.#dispatch.dispatchEmitted(this.#native.elapsedUs()) && this.#ring.claimWake()) this.#native.wake();
  };

  /** Connects to Redis; a bus that cannot connect does not start (BACKEND_UNAVAILABLE). */
  async #connect(streams: Streams): Promise<void> {
    try {
      await streams.start();
    } catch (err) {
      const failure = err instanceof BusError ? err : new BusError('BACKEND_UNAVAILABLE', String((err as Error)?.message ?? err));
      this.#backendFailure = failure;
      streams.close(failure);
      this.#log.write('error', 'events::redis', 'Redis is unreachable; the bus did not start', { error: failure.message, url: this.#config.backend.url });
      throw failure;
    }
    const { evictionPolicy, version } = streams.facts;
    this.#log.write('info', 'events::redis', 'connected to Redis', { version, name: this.#config.backend.name });
    if (evictionPolicy !== '' && evictionPolicy !== 'noeviction') {
      this.#log.write('warn', 'events::redis', `Redis's maxmemory-policy is '${evictionPolicy}': when its memory fills it deletes keys, events among them; set it to 'noeviction'`, {
        evictionPolicy,
      });
    }
  }

  initialize(): Promise<void> {
    // Concurrent calls (bootstrapEventSystem and the application) share one start.
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#state === 'running' || this.#state === 'inline') return;
    if (this.#state !== 'created') {
      throw new BusError('INVALID_STATE', 'a bus that was shut down cannot be restarted; create a new one');
    }
    if (this.#backendFailure !== undefined) {
      throw new BusError('BACKEND_UNAVAILABLE', `${this.#backendFailure.message} (create a new bus to try again)`, { field: 'backend.url' });
    }
    if (this.#streams !== undefined) await this.#connect(this.#streams);
    // Before the workers start, so what a previous run left comes first.
    // A journal that cannot open (locked, unreadable) leaves the bus as
    // it was: initialize() may be called again.
    const recovered = this.#journal?.open();
    try {
      callNative(() => this.#native.start(this.#dispatch.onDeliveries, this.#config.workerCount));
    } catch (err) {
      return this.#workersUnavailable(fromNative(err));
    }
    live.add(this.#native);
    this.#intake.startDispatching();
    this.#state = 'running';
    if (recovered !== undefined && recovered.corruptions.length > 0) {
      const where = recovered.corruptions.map((c) => `segment ${c.segment} at byte ${c.offset} (${c.reason}, ${c.skipped} bytes skipped)`);
      this.#notify('journal_error', new BusError('JOURNAL_ERROR', `the journal was corrupt in the middle: ${where.join('; ')}`, { corruptions: recovered.corruptions }));
    }
    this.#startMonitoring();
    if (this.#books.outstanding > 0) this.#books.hold();
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
    const logger = readLogger(partial);
    const next = callNative(() => this.#native.updateConfig(tree, problems)) as BufferedEventConfig;
    if (logger !== undefined) this.#log.setLogger(logger);
    const before = this.#config;
    this.#config = next;
    if (next.handlerTimeout !== before.handlerTimeout) {
      this.#dispatch.setHandlerTimeout(next.handlerTimeout);
      this.#workers.setHandlerTimeout(next.handlerTimeout);
    }
    this.#observer.reconfigure(next);
    if (next.workerCount !== before.workerCount && this.#state === 'running') {
      callNative(() => this.#native.scale(next.workerCount));
    }
  }

  emitEvent(type: string, payload: unknown, options?: EventOptions): Promise<string> {
    try {
      return Promise.resolve(this.#intake.accept(type, payload, options));
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
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot register a handler for '${String(eventType)}': the bus is shut down`);
    }
    return this.#workers.register(eventType, modulePath, options);
  }

  getMetrics(): EventSystemMetrics {
    // Whatever isolates settled so far, even if not yet announced.
    this.#dispatch.takeReports();
    return this.#observer.metrics();
  }

  async getHealthStatus(): Promise<HealthCheckResult> {
    this.#dispatch.takeReports();
    return this.#observer.health(this.isReady(), this.#workers.pool);
  }

  metricsText(): string {
    this.#dispatch.takeReports();
    return this.#observer.metricsText();
  }

  getWorkerStatistics(): WorkerStatistics {
    return this.#observer.workers(this.#workers.pool);
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
    const { offset, limit } = readPage(page);
    // On Redis the dead letters are the group's.
    if (this.#streams?.isOpen) return this.#streams.deadLetters(offset, limit);
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
    checkLetterId(id, 'replayDeadLetter');
    if (this.#state === 'draining' || this.#state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', 'cannot replay dead letters on a bus that is shutting down');
    }
    if (this.#streams?.isOpen) return this.#streams.replayLetters(id);
    // News the books have for these events comes first: a replayed event
    // is open again from here on.
    this.#dispatch.takeReports();
    const replayed = this.#native.replayDeadLetters(id);
    for (const d of replayed) this.#books.opened(d.slot);
    return replayed.length;
  }

  removeDeadLetter(id: number): boolean {
    checkLetterId(id, 'removeDeadLetter');
    if (this.#streams?.isOpen) return this.#streams.removeLetters(id) > 0;
    return this.#dropLetters(this.#native.removeDeadLetters(id)) > 0;
  }

  clearDeadLetterQueue(): number {
    if (this.#streams?.isOpen) return this.#streams.removeLetters(undefined);
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

  async #workersUnavailable(err: BusError): Promise<void> {
    this.#log.write('error', 'events::worker', err.code === 'WORKERS_UNAVAILABLE' ? 'native workers could not start' : 'the bus could not start', {
      code: err.code,
      error: err.message,
      fallbackToSync: this.#config.fallbackToSync,
    });
    super.emit('worker_error', err);
    // Nothing runs the group's events here: leave them to the others.
    this.#streams?.close();
    if (!this.#config.fallbackToSync) {
      this.#state = 'failed';
      // Nothing will run here: the journal (and its directory) is free for another bus.
      this.#journal?.close();
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
        this.#books.abandoned(u.slot);
        return this.#dispatch.runInline(u.slot);
      }),
    );
  }

  /**
   * Emits from inside the bus's own bookkeeping. A listener that throws
   * must not leave that half done (a delivery never acknowledged, a drain
   * cut short), so its error is rethrown on a fresh stack, where it
   * surfaces as an uncaught exception as any listener's would.
   */
  #notify(event: 'handler_error' | 'worker_error' | 'journal_error', value: unknown): void {
    if (event === 'worker_error') this.#logWorkerError(value);
    try {
      super.emit(event, value);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** What the core did not log itself: isolates' deaths, handler modules that failed to load. */
  #logWorkerError(err: unknown): void {
    const code = err instanceof BusError ? err.code : 'NATIVE_ERROR';
    if (code === 'WORKER_PANIC') return;
    const details = err instanceof BusError ? err.details : undefined;
    const message =
      code === 'ISOLATE_DIED'
        ? 'worker isolate died; it is replaced after its restart delay'
        : code === 'HANDLER_MODULE_ERROR'
          ? 'worker handler module failed to load in an isolate'
          : 'internal error between the JavaScript layer and the native core';
    this.#log.write('error', code === 'NATIVE_ERROR' ? 'events::bus' : 'events::isolate', message, { code, error: errorText(err), ...details });
  }

  /** Dead letters removed: the books say which events may now be freed. Returns how many. */
  #dropLetters(letters: unknown[]): number {
    this.#dispatch.takeReports();
    return letters.length;
  }

  #startMonitoring(): void {
    this.#observer.start(
      (event, value) => super.emit(event, value),
      (event) => this.listenerCount(event) > 0,
      () => this.isReady(),
      () => this.#workers.pool,
    );
  }

  // ---- shutdown -------------------------------------------------------

  async #drainAndStop(timeout: number): Promise<ShutdownReport> {
    const wasRunning = this.#state === 'running';
    this.#state = 'draining';
    // What the group still holds stays there, for the other processes.
    this.#streams?.stopReading();
    const finishedBefore = this.#observer.finishedCount();
    const books = this.#books;
    this.#log.write('info', 'events::shutdown', 'shutdown started; draining the queue', { outstanding: books.outstanding, timeoutMs: timeout });
    if (wasRunning && books.outstanding > 0) {
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeout);
        books.onDrained = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      books.onDrained = undefined;
      if (!drained) {
        this.#log.write('warn', 'events::shutdown', 'shutdown deadline reached with events outstanding', { outstanding: books.outstanding, timeoutMs: timeout });
      }
    }
    const undelivered = this.#native.stop();
    live.delete(this.#native);
    // Deliveries already handed over but not yet started never will be:
    // they are reported with what never started, not as aborted.
    this.#dispatch.stop(undelivered);
    // On Redis, what will not run here goes back to the group for the others.
    this.#streams?.release(undelivered);
    if (this.#workers.pool) {
      await this.#workers.stop();
      // Isolates that finished deliveries before they were terminated:
      // those events are done, not aborted.
      this.#dispatch.takeReports();
    }
    this.#observer.stop();
    this.#dispatch.finish();
    const remaining: QueuedEvent[] = undelivered.map((u) => {
      const event = this.#slots.queuedEvent(u.slot);
      if (u.handler !== 0) {
        event.handler = this.#registry.byId(u.handler)?.name ?? `handler #${u.handler}`;
        event.retryCount = u.attempt;
      }
      books.abandoned(u.slot);
      return event;
    });
    this.#dispatch.abortRunning(new BusError('SHUTTING_DOWN', 'the bus was shut down before this handler settled'));
    // Whatever still has open work was running: here, or in an isolate
    // (terminated above).
    const inFlightAborted: QueuedEvent[] = this.#slots
      .slots()
      .filter((slot) => books.isOpen(slot))
      .map((slot) => this.#slots.queuedEvent(slot));
    // Recovered events whose type never got a handler wait in the journal.
    if (this.#journal !== undefined) remaining.push(...this.#journal.waitingEvents());
    books.releaseProcess();
    // Sends the settles of what finished during the drain.
    this.#streams?.close();
    this.#state = 'stopped';
    const closing = this.#journal?.close();
    if (closing !== undefined) this.#notify('journal_error', closing);
    const report: ShutdownReport = {
      drained: this.#observer.finishedCount() - finishedBefore,
      remaining,
      inFlightAborted,
    };
    this.#log.write('info', 'events::shutdown', 'shutdown finished', {
      drained: report.drained,
      remaining: remaining.length,
      inFlightAborted: inFlightAborted.length,
    });
    this.#log.close();
    super.emit('shutdown', report);
    return report;
  }
}

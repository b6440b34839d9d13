// Running what the native engine hands this thread: deliveries to
// main-thread handlers, and the acknowledgements (with failures) that go
// back; the engine's reports on each event's books come with them.
import { AckBuffer, type FailureRecord, failureRecord, OUTCOME } from './acks';
import { Delivery, type DeliveryHost } from './delivery';
import { BusError, errorText, fromNative } from './errors';
import type { RegisteredHandler } from './handlers';
import type { Unrunnable } from './event-record';
import type { BusParts } from './parts';
import { type SoloHost, SoloDeliveries } from './solo';
import { TimeoutQueue } from './timeouts';

/**
 * How long (ms) into a turn of the event loop the main thread keeps
 * refilling the window and running what came out, before leaving the rest
 * to the workers and the next turn.
 */
const REFILL_TURN_MS = 4;
/**
 * How long (ms) one turn of the event loop may spend running deliveries
 * before further notifications wait for the next turn. Node runs queued
 * threadsafe-function calls back to back in one turn, so workers that
 * refill the window while this thread runs handlers would otherwise keep
 * it from timers and I/O until the queue is empty.
 */
const TURN_BUDGET_MS = 4;

/** What `NativeBus.dispatch` reports (src/binding/bus.rs). */
const DISPATCH = { SKIPPED: 0, FULL: 1, DRAINED: 2 } as const;

/** A delivery announced to this thread that never started (the engine stopped first). */
export interface Undelivered {
  slot: number;
  handler: number;
  attempt: number;
}

export interface DispatchHost extends BusParts {
  /** Whether the engine may fill the window from this thread (running or draining). */
  refilling(): boolean;
  /**
   * Runs before the engine's books are read: a durable bus hands the
   * journal what it staged, so an event's end is never journaled before
   * its acceptance.
   */
  beforeReports(): void;
  /** Emits on the bus; a throwing listener must not escape into the books. */
  notify(event: 'handler_error' | 'worker_error', value: unknown): void;
}

export class Dispatcher {
  readonly #h: DispatchHost;
  readonly acks: AckBuffer;
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
  /** performance.now() when the current drain began; see #complete. */
  #turnStarted = 0;
  /** performance.now() when this turn of the event loop began delivering, while it lasts. */
  #turnBegan: number | undefined;
  #deferred = false;
  /** The last flush asked the engine to refill the window on this thread. */
  #refilled = false;
  #workerErrorsSeen = 0;
  /** The engine's count of reports announced from other threads, as last seen. */
  #reportsSeen = 0;
  /** Set once the engine stopped: no delivery starts after it. */
  #stopped = false;

  constructor(host: DispatchHost) {
    this.#h = host;
    this.acks = new AckBuffer(host.ring.handoff, this.#complete, this.#afterRefill);
    this.#timeouts = new TimeoutQueue(host.config().handlerTimeout);
    this.#solo = new SoloDeliveries(this.#host);
  }

  /** The abort signal of the delivery running `slot`, for `event.signal`. */
  signalOf(slot: number): AbortSignal | undefined {
    return this.#fanOut[slot]?.signal ?? this.#solo.signal(slot);
  }

  /** Deliveries started from now on time out after `ms`. */
  setHandlerTimeout(ms: number): void {
    this.#oldTimeouts = this.#oldTimeouts.filter((q) => !q.idle());
    this.#oldTimeouts.push(this.#timeouts);
    this.#timeouts = new TimeoutQueue(ms);
  }

  /** The engine's "deliveries are waiting" callback. */
  readonly onDeliveries = (): void => {
    // A notification queued before the engine stopped: what it announced
    // was collected by stop() and must never start.
    if (this.#stopped) return;
    if (!this.#startDrain()) {
      // The hand-off queue stays marked as notified, so workers do not
      // notify again; the next turn drains it, after the timers that are
      // due by then.
      if (!this.#deferred) {
        this.#deferred = true;
        setTimeout(this.#drainDeferred, 0);
      }
      return;
    }
    this.#h.ring.handoff.drain(this.#deliver);
    this.catchUp();
    const errors = this.#h.ring.workerErrors();
    if (errors !== this.#workerErrorsSeen) {
      this.#workerErrorsSeen = errors;
      for (const e of this.#h.native.takeWorkerErrors()) {
        const err = new BusError('WORKER_PANIC', `native worker ${e.worker} panicked: ${e.message}`, {
          worker: e.worker,
          requeued: e.requeued,
        });
        this.#h.notify('worker_error', err);
      }
    }
  };

  /**
   * Emissions just landed in the ring (the first at `sinceUs` on the
   * engine clock, for the event-loop lag): the engine dispatches them on this
   * thread and they start now, instead of a worker waking up to hand them
   * back through a threadsafe function (a thread hand-off each way, and a
   * turn of the event loop). Returns false when a worker must be woken
   * instead: this turn spent its budget, a worker was dispatching, or
   * records are left waiting for room in the window (only workers wait for
   * permits).
   */
  dispatchEmitted(sinceUs: number): boolean {
    if (this.#stopped) return false;
    // Called even when this thread may not dispatch, for the lag.
    const look = this.#h.refilling() && this.#startDrain();
    let outcome: number;
    try {
      outcome = this.#h.native.dispatch(sinceUs, look);
    } catch (err) {
      this.#h.notify('worker_error', fromNative(err));
      return false;
    }
    if (outcome !== DISPATCH.SKIPPED) this.#drainPublished();
    return outcome === DISPATCH.DRAINED;
  }

  /** A drain begins in this turn of the event loop; false once the turn has spent its budget. */
  #startDrain(): boolean {
    const now = performance.now();
    if (this.#turnBegan === undefined) {
      this.#turnBegan = now;
      setImmediate(this.#turnEnded);
    } else if (now - this.#turnBegan > TURN_BUDGET_MS) {
      return false;
    }
    this.#turnStarted = now;
    return true;
  }

  readonly #turnEnded = (): void => {
    this.#turnBegan = undefined;
  };

  readonly #drainDeferred = (): void => {
    this.#deferred = false;
    this.#turnBegan = undefined;
    this.onDeliveries();
  };

  /**
   * Deliveries the refill (see #complete) published: run them in this
   * turn. Only after a refill: what workers published meanwhile waits for
   * its notification, or one turn could run window after window.
   */
  readonly #afterRefill = (): void => {
    if (this.#stopped || !this.#refilled) return;
    this.#refilled = false;
    this.#drainPublished();
  };

  /**
   * Runs what this thread's own dispatch published quietly. Should a
   * delivery throw, nobody would be notified of the rest: come back for it.
   */
  #drainPublished(): void {
    try {
      this.#h.ring.handoff.drain(this.#deliver);
    } catch (err) {
      setImmediate(this.onDeliveries);
      throw err;
    }
  }

  readonly #deliver = (slot: number, handlerId: number, attempt: number): void => {
    const { slots, registry } = this.#h;
    if (!slots.has(slot)) {
      // The two sides disagree about a slot: acknowledge so the window
      // does not leak, and say so.
      this.#h.notify('worker_error', new BusError('NATIVE_ERROR', `delivery for unknown slot ${slot}`));
      this.acks.push(slot, handlerId, OUTCOME.FAILED);
      return;
    }
    const undecodable = slots.undecodable(slot);
    if (undecodable !== undefined) return this.#cannotDecode(slot, handlerId, attempt, undecodable);
    if (registry.isIsolated(slots.typeId(slot))) return this.#forward(slot, handlerId, attempt);
    let handlers: readonly RegisteredHandler[];
    if (handlerId === 0) {
      handlers = registry.forType(slots.typeId(slot));
    } else {
      const one = registry.byId(handlerId);
      handlers = one ? [one] : [];
    }
    if (handlers.length === 0) return this.acks.push(slot, handlerId, OUTCOME.NO_HANDLER);
    // A first delivery to every handler (attempt 0; a recovered retry is
    // a later attempt and shows its retryCount).
    if (handlerId === 0 && attempt === 0 && handlers.length === 1 && this.#h.config().handlerTimeout === 0) {
      return this.#solo.run(slot, handlers[0], slots.event(slot), slots.context(slot));
    }
    const delivery = new Delivery(this.#host, handlers, slot, handlerId, attempt, this.#timeouts.deadline());
    if (handlerId === 0) this.#fanOut[slot] = delivery;
    else this.#single.add(delivery);
    this.#timeouts.track(delivery);
    delivery.run(slots.eventFor(slot, delivery), slots.context(slot));
  };

  /**
   * A delivery of a type handled in isolates reached this thread: the event
   * was emitted before the type's worker handler was registered, so it has
   * no serialised bytes. Serialise it now and send it on; if that cannot
   * be done, it fails like a handler failure (retried, then dead-lettered).
   */
  #forward(slot: number, handlerId: number, attempt: number): void {
    const { slots, registry, workers } = this.#h;
    let error: unknown;
    try {
      const e = slots.queuedEvent(slot);
      const serialised = workers.serialise({ id: e.id, type: e.type, payload: e.payload, lane: slots.lane(slot), correlationId: e.correlationId, timestamp: e.timestamp });
      const offset = workers.store(serialised);
      if (offset < 0) {
        const { maxMemoryMB } = this.#h.config();
        throw new BusError('QUEUE_FULL', `no room for the event in maxMemoryMB (${maxMemoryMB} MB) of isolate memory`, { field: 'maxMemoryMB' });
      }
      const size = serialised.bytes.length + 1;
      slots.setArena(slot, offset, size);
      this.#h.native.reroute(slot, handlerId, offset, size);
      workers.ensureStarted();
      return;
    } catch (err) {
      error = err;
    }
    const handler = registry.forType(slots.typeId(slot))[0] ?? registry.byId(handlerId);
    if (handler === undefined) return this.acks.push(slot, handlerId, OUTCOME.NO_HANDLER);
    this.#handlerFailed(slot, handlerId, attempt, handler, error, false);
    this.acks.push(slot, handlerId, OUTCOME.FAILED);
  }

  /**
   * A recovered event whose payload this Node cannot decode (a structured
   * clone from a newer V8): it fails, not retryable, so it goes to the
   * dead-letter queue saying why, charged to one handler.
   */
  #cannotDecode(slot: number, handlerId: number, attempt: number, why: Unrunnable): void {
    const { slots, registry } = this.#h;
    const handler = registry.forType(slots.typeId(slot))[0] ?? registry.byId(handlerId);
    if (handler === undefined) return this.acks.push(slot, handlerId, OUTCOME.NO_HANDLER);
    const error = Object.assign(new Error(why.message), { name: why.name, retryable: false });
    this.#handlerFailed(slot, handlerId, attempt, handler, error, false);
    this.acks.push(slot, handlerId, OUTCOME.FAILED);
  }

  readonly #host: DeliveryHost & SoloHost = {
    handlerFailed: (delivery, handler, error, timedOut) => {
      this.#handlerFailed(delivery.slot, delivery.handlerId, delivery.attempt, handler, error, timedOut);
    },
    deliveryDone: (delivery) => {
      if (delivery.handlerId === 0) this.#fanOut[delivery.slot] = undefined;
      else this.#single.delete(delivery);
      this.acks.push(delivery.slot, delivery.handlerId, delivery.failures > 0 ? OUTCOME.FAILED : OUTCOME.OK);
    },
    soloSettled: (slot, handler, failed, error) => {
      if (failed) this.#handlerFailed(slot, 0, 0, handler, error, false);
      this.acks.push(slot, 0, failed ? OUTCOME.FAILED : OUTCOME.OK);
    },
  };

  #handlerFailed(slot: number, delivery: number, attempt: number, handler: RegisteredHandler, error: unknown, timedOut: boolean): void {
    this.acks.fail(failureRecord(slot, delivery, handler, error, timedOut));
    this.emitHandlerError(slot, handler, error, attempt, timedOut);
  }

  /**
   * With a scheduled flush, the native side also fills the room the
   * acknowledgements freed in the window, on this thread, and #afterRefill
   * runs what it published in this same turn of the event loop. Bounded in
   * time per turn, so handlers that settle in microtasks (or burn CPU)
   * cannot keep the loop from its other work; workers take over from there.
   */
  readonly #complete = (count: number, failures: FailureRecord[] | undefined, scheduled: boolean): void => {
    const refill = scheduled && this.#h.refilling() && performance.now() - this.#turnStarted < REFILL_TURN_MS;
    this.#refilled = refill;
    let reports: number | number[];
    try {
      this.#h.beforeReports();
      reports = this.#h.native.complete(count, failures, refill);
    } catch (err) {
      this.#h.notify('worker_error', fromNative(err));
      return;
    }
    // Reports come back in the ack area, unless there were too many.
    if (typeof reports !== 'number') this.#h.books.apply(reports);
    else if (reports > 0) this.#h.ring.handoff.applyWrittenBack(reports * 2, this.#h.books);
  };

  /**
   * Applies the books' reports that other threads (isolates) announced
   * since the last look, if any: cheap when there are none.
   */
  catchUp(): void {
    const reports = this.#h.ring.reports();
    if (reports !== this.#reportsSeen) {
      this.#reportsSeen = reports;
      this.takeReports();
    }
  }

  /**
   * Applies what the engine's books say since the last flush: after a
   * dead-letter call, or before metrics are read, so that they agree with
   * the dead-letter queue even for what an isolate settled a moment ago.
   */
  takeReports(): void {
    this.#h.beforeReports();
    const reports = this.#h.native.takeReports();
    if (reports.length > 0) this.#h.books.apply(reports);
  }

  emitHandlerError(slot: number, handler: RegisteredHandler, error: unknown, retryCount: number, timedOut: boolean): void {
    this.#h.notify('handler_error', { event: this.#h.slots.queuedEvent(slot), handler: handler.name, error, retryCount, timedOut });
  }

  /**
   * Runs an event's handlers on this thread and resolves once they settle:
   * for a full queue with `fallbackToSync`, or when no worker could start.
   * The caller is awaiting it, so it runs once, under `handlerTimeout`; a
   * failure (or timeout) is reported and counted, and the emission rejects
   * with `HANDLER_FAILED` carrying it: the caller holds the event.
   */
  runInline(slot: number): Promise<string> {
    const { slots, registry, observer } = this.#h;
    observer.accepted();
    const id = slots.id(slot);
    const type = slots.type(slot);
    return new Promise((resolve, reject) => {
      const handlers = registry.forType(slots.typeId(slot));
      let firstError: unknown;
      const finish = (failures: number): void => {
        slots.release(slot);
        observer.handledInline(failures > 0);
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
          this.emitHandlerError(d.slot, handler, error, 0, timedOut);
        },
        deliveryDone: (d) => finish(d.failures),
      };
      const delivery = new Delivery(host, handlers, slot, 0, 0, this.#timeouts.deadline());
      this.#timeouts.track(delivery);
      delivery.run(slots.event(slot), slots.context(slot));
    });
  }

  /**
   * The engine stopped: nothing starts from now on. Deliveries handed over
   * but not started are added to `undelivered`.
   */
  stop(undelivered: Undelivered[]): void {
    this.#stopped = true;
    this.#h.ring.handoff.drain((slot, handlerId, attempt) => {
      if (this.#h.slots.has(slot)) undelivered.push({ slot, handler: handlerId, attempt });
    });
  }

  /** Stops the timeout timers and hands over the last acknowledgements. */
  finish(): void {
    this.#timeouts.stop();
    for (const q of this.#oldTimeouts) q.stop();
    this.acks.drain();
  }

  /** Aborts `event.signal` of every handler still running (forced shutdown). */
  abortRunning(reason: BusError): void {
    for (const delivery of [...this.#fanOut, ...this.#single]) delivery?.abort(reason);
    this.#solo.abortAll(reason);
  }
}

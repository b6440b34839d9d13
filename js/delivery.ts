import type { AsyncResource } from 'node:async_hooks';
import { BusError } from './errors';
import { thenOf } from './hostile';
import type { RegisteredHandler } from './handlers';

/** Receives the outcome of deliveries; one object per bus, not per event. */
export interface DeliveryHost {
  /** A handler threw, rejected or timed out. */
  handlerFailed(delivery: Delivery, handler: RegisteredHandler, error: unknown, timedOut: boolean): void;
  /** Every handler of the delivery has settled (or timed out). */
  deliveryDone(delivery: Delivery): void;
}

/** Thrown into a delivery's failures when a handler outlives `handlerTimeout`. */
export class HandlerTimeoutError extends BusError {
  constructor(handler: string, timeoutMs: number) {
    super('HANDLER_TIMEOUT', `handler ${handler} did not settle within handlerTimeout (${timeoutMs} ms)`, {
      field: 'handlerTimeout',
      limit: timeoutMs,
    });
    this.name = 'HandlerTimeoutError';
  }
}

const NOT_STARTED = 0;
const RUNNING = 1;
const SETTLED = 2;

/**
 * One delivery: an event handed to its handlers (all of them, or one for a
 * retry). Runs them with the same event, reports each failure once, and
 * reports the delivery done once every handler settled or the delivery
 * timed out; a handler that settles after that is ignored. A handler may
 * throw, reject, return a non-promise or a thenable that settles twice:
 * none of these escapes or double-counts.
 */
export class Delivery {
  readonly slot: number;
  /** 0 for a first delivery to every handler, else the retried handler's id. */
  readonly handlerId: number;
  readonly attempt: number;
  /** performance.now() after which the delivery times out (Infinity: never). */
  readonly deadline: number;
  failures = 0;
  #host: DeliveryHost;
  #handlers: readonly RegisteredHandler[];
  /** Per handler: NOT_STARTED, RUNNING or SETTLED. */
  #states: Uint8Array | undefined;
  #single = NOT_STARTED;
  #pending = 0;
  #done = false;
  #controller: AbortController | undefined;

  constructor(host: DeliveryHost, handlers: readonly RegisteredHandler[], slot: number, handlerId: number, attempt: number, deadline: number) {
    this.#host = host;
    this.#handlers = handlers;
    this.slot = slot;
    this.handlerId = handlerId;
    this.attempt = attempt;
    this.deadline = deadline;
    this.#pending = handlers.length;
    if (handlers.length > 1) this.#states = new Uint8Array(handlers.length);
  }

  get done(): boolean {
    return this.#done;
  }

  /** Aborted when the delivery times out or the bus is shut down at its deadline. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  /** Runs the handlers, inside `context` (the emission's async context) when given. */
  run(event: unknown, context?: AsyncResource): void {
    const handlers = this.#handlers;
    for (let i = 0; i < handlers.length && !this.#done; i++) this.#runOne(i, handlers[i], event, context);
  }

  #runOne(i: number, handler: RegisteredHandler, event: unknown, context: AsyncResource | undefined): void {
    this.#setState(i, RUNNING);
    try {
      const result = context === undefined ? handler.fn.call(handler.thisArg, event) : context.runInAsyncScope(handler.fn, handler.thisArg, event);
      // Reading `then` may throw (a getter, a Proxy); so may calling it (a
      // promise subclass): either is the handler's failure.
      const then = thenOf(result);
      if (then === undefined) return this.#settle(i, handler, false, undefined);
      then.call(
        result,
        () => this.#settle(i, handler, false, undefined),
        (error: unknown) => this.#settle(i, handler, true, error),
      );
    } catch (error) {
      this.#settle(i, handler, true, error);
    }
  }

  #state(i: number): number {
    return this.#states === undefined ? this.#single : this.#states[i];
  }

  #setState(i: number, state: number): void {
    if (this.#states === undefined) this.#single = state;
    else this.#states[i] = state;
  }

  #settle(i: number, handler: RegisteredHandler, failed: boolean, error: unknown): void {
    if (this.#done || this.#state(i) !== RUNNING) return;
    this.#setState(i, SETTLED);
    if (failed) {
      this.failures++;
      this.#host.handlerFailed(this, handler, error, false);
    }
    if (--this.#pending === 0) this.#finish();
  }

  /** Fails every handler still running with `HANDLER_TIMEOUT` and ends the delivery. */
  timeOut(timeoutMs: number): void {
    if (this.#done) return;
    const handlers = this.#handlers;
    let first: HandlerTimeoutError | undefined;
    for (let i = 0; i < handlers.length; i++) {
      if (this.#state(i) === SETTLED) continue;
      this.#setState(i, SETTLED);
      const error = new HandlerTimeoutError(handlers[i].name, timeoutMs);
      first ??= error;
      this.failures++;
      this.#host.handlerFailed(this, handlers[i], error, true);
    }
    this.#controller?.abort(first);
    this.#finish();
  }

  /**
   * Aborts the signal without ending the delivery (forced shutdown), also
   * for a handler that reads `event.signal` only afterwards.
   */
  abort(reason: unknown): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }

  #finish(): void {
    this.#done = true;
    this.#host.deliveryDone(this);
  }
}

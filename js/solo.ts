import type { AsyncResource } from 'node:async_hooks';
import type { RegisteredHandler } from './handlers';

/** Receives the outcome of a solo delivery. */
export interface SoloHost {
  soloSettled(slot: number, handler: RegisteredHandler, failed: boolean, error: unknown): void;
}

/**
 * First deliveries of events whose type has one handler, when no
 * `handlerTimeout` is set: the common case, run without a `Delivery` object
 * or per-event closures (together a fifth of the main thread's cost of
 * delivering an event). The settle callbacks are made once per slot and
 * reused by every event that later takes the slot. That is sound because a
 * slot is reused only after its delivery settled, a delivery settles only
 * through its callbacks (there is no timeout), and a native promise calls
 * them at most once; anything else a handler returns is adopted by a
 * promise first, which gives the same guarantee.
 */
export class SoloDeliveries {
  readonly #host: SoloHost;
  /** The handler running at each slot; undefined when none. */
  readonly #running: (RegisteredHandler | undefined)[] = [];
  readonly #onResolved: (() => void)[] = [];
  readonly #onRejected: ((error: unknown) => void)[] = [];
  /** Made when a handler first reads `event.signal`. */
  readonly #controllers = new Map<number, AbortController>();
  /** Set by `abortAll`: a signal first read afterwards is already aborted. */
  #abortReason: unknown;
  #aborted = false;

  constructor(host: SoloHost) {
    this.#host = host;
  }

  run(slot: number, handler: RegisteredHandler, event: unknown, context: AsyncResource | undefined): void {
    this.#running[slot] = handler;
    try {
      const result = context === undefined ? handler.fn.call(handler.thisArg, event) : context.runInAsyncScope(handler.fn, handler.thisArg, event);
      if (result === null || (typeof result !== 'object' && typeof result !== 'function')) {
        return this.#settle(slot, false, undefined);
      }
      // Promise.resolve returns a native promise as it is and adopts a
      // thenable (its `then` read and called later, a throw a rejection);
      // the instanceof check itself may throw for a Proxy, and a promise
      // subclass's `then` may throw: each is the handler's failure.
      const promise = result instanceof Promise ? result : Promise.resolve(result);
      promise.then(this.#resolvedAt(slot), this.#rejectedAt(slot));
    } catch (error) {
      this.#settle(slot, true, error);
    }
  }

  /** The signal of the delivery running at `slot`, if one is running here. */
  signal(slot: number): AbortSignal | undefined {
    if (this.#running[slot] === undefined) return undefined;
    let controller = this.#controllers.get(slot);
    if (controller === undefined) {
      controller = new AbortController();
      if (this.#aborted) controller.abort(this.#abortReason);
      this.#controllers.set(slot, controller);
    }
    return controller.signal;
  }

  /** Aborts the signal of every running delivery (forced shutdown); they keep running. */
  abortAll(reason: unknown): void {
    this.#aborted = true;
    this.#abortReason = reason;
    for (const controller of this.#controllers.values()) controller.abort(reason);
  }

  #resolvedAt(slot: number): () => void {
    return (this.#onResolved[slot] ??= () => this.#settle(slot, false, undefined));
  }

  #rejectedAt(slot: number): (error: unknown) => void {
    return (this.#onRejected[slot] ??= (error: unknown) => this.#settle(slot, true, error));
  }

  #settle(slot: number, failed: boolean, error: unknown): void {
    const handler = this.#running[slot];
    if (handler === undefined) return;
    this.#running[slot] = undefined;
    if (this.#controllers.size > 0) this.#controllers.delete(slot);
    this.#host.soloSettled(slot, handler, failed, error);
  }
}

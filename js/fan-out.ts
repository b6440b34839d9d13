import type { RegisteredHandler } from './handlers';

/** Receives the outcome of a delivery; one object per bus, not per event. */
export interface DeliveryHost {
  /** A handler threw or rejected. */
  handlerFailed(slot: number, handler: RegisteredHandler, error: unknown, attempt: number): void;
  /** Every handler of the delivery has settled; `failures` of them failed. */
  deliveryDone(slot: number, handlerId: number, failures: number): void;
}

/**
 * Runs every handler of one delivery with the same event and reports once
 * they have all settled. A handler may throw, reject, return a non-promise
 * or a thenable that settles twice: none of these escapes or double-counts.
 */
export function runDelivery(
  host: DeliveryHost,
  handlers: readonly RegisteredHandler[],
  event: unknown,
  slot: number,
  handlerId: number,
  attempt: number,
): void {
  if (handlers.length === 1) return runOne(host, handlers[0], event, slot, handlerId, attempt);
  let remaining = handlers.length;
  let failures = 0;
  const fanIn: DeliveryHost = {
    handlerFailed(s, handler, error, a) {
      failures++;
      host.handlerFailed(s, handler, error, a);
    },
    deliveryDone() {
      if (--remaining === 0) host.deliveryDone(slot, handlerId, failures);
    },
  };
  for (const handler of handlers) runOne(fanIn, handler, event, slot, handlerId, attempt);
}

function runOne(
  host: DeliveryHost,
  handler: RegisteredHandler,
  event: unknown,
  slot: number,
  handlerId: number,
  attempt: number,
): void {
  let result: unknown;
  try {
    result = handler.fn.call(handler.thisArg, event);
  } catch (error) {
    host.handlerFailed(slot, handler, error, attempt);
    return host.deliveryDone(slot, handlerId, 1);
  }
  if (result instanceof Promise) {
    // A native promise settles exactly once: no guard needed.
    result.then(
      () => host.deliveryDone(slot, handlerId, 0),
      (error: unknown) => {
        host.handlerFailed(slot, handler, error, attempt);
        host.deliveryDone(slot, handlerId, 1);
      },
    );
    return;
  }
  const then =
    result !== null && (typeof result === 'object' || typeof result === 'function')
      ? (result as { then?: unknown }).then
      : undefined;
  if (typeof then !== 'function') return host.deliveryDone(slot, handlerId, 0);
  let settled = false;
  const settle = (failed: boolean, error: unknown): void => {
    if (settled) return;
    settled = true;
    if (failed) host.handlerFailed(slot, handler, error, attempt);
    host.deliveryDone(slot, handlerId, failed ? 1 : 0);
  };
  try {
    then.call(
      result,
      () => settle(false, undefined),
      (error: unknown) => settle(true, error),
    );
  } catch (error) {
    settle(true, error);
  }
}

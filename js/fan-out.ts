import type { EventRecord } from './event-record';
import type { RegisteredHandler } from './handlers';

/** Receives the outcome of a delivery; one object per bus, not per event. */
export interface DeliveryHost {
  /** A handler threw or rejected. */
  handlerFailed(rec: EventRecord, handler: RegisteredHandler, error: unknown, attempt: number): void;
  /** Every handler of the delivery has settled; `failures` of them failed. */
  deliveryDone(slot: number, rec: EventRecord, handlerId: number, failures: number): void;
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
  rec: EventRecord,
  handlerId: number,
  attempt: number,
): void {
  if (handlers.length === 1) return runOne(host, handlers[0], event, slot, rec, handlerId, attempt);
  let remaining = handlers.length;
  let failures = 0;
  const fanIn: DeliveryHost = {
    handlerFailed(r, handler, error, a) {
      failures++;
      host.handlerFailed(r, handler, error, a);
    },
    deliveryDone() {
      if (--remaining === 0) host.deliveryDone(slot, rec, handlerId, failures);
    },
  };
  for (const handler of handlers) runOne(fanIn, handler, event, slot, rec, handlerId, attempt);
}

function runOne(
  host: DeliveryHost,
  handler: RegisteredHandler,
  event: unknown,
  slot: number,
  rec: EventRecord,
  handlerId: number,
  attempt: number,
): void {
  let result: unknown;
  try {
    result = handler.fn.call(handler.thisArg, event);
  } catch (error) {
    host.handlerFailed(rec, handler, error, attempt);
    return host.deliveryDone(slot, rec, handlerId, 1);
  }
  if (result instanceof Promise) {
    // A native promise settles exactly once: no guard needed.
    result.then(
      () => host.deliveryDone(slot, rec, handlerId, 0),
      (error: unknown) => {
        host.handlerFailed(rec, handler, error, attempt);
        host.deliveryDone(slot, rec, handlerId, 1);
      },
    );
    return;
  }
  const then = result !== null && (typeof result === 'object' || typeof result === 'function') ? (result as { then?: unknown }).then : undefined;
  if (typeof then !== 'function') return host.deliveryDone(slot, rec, handlerId, 0);
  let settled = false;
  const settle = (failed: boolean, error: unknown): void => {
    if (settled) return;
    settled = true;
    if (failed) host.handlerFailed(rec, handler, error, attempt);
    host.deliveryDone(slot, rec, handlerId, failed ? 1 : 0);
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

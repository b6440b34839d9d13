import type { RegisteredHandler } from './handlers';
import type { AckArea } from './handoff';
import { summarizeThrown } from './hostile';

/** Outcome codes shared with src/core/observe/metrics.rs. */
export const OUTCOME = { OK: 0, FAILED: 1, NO_HANDLER: 2 } as const;
/** One handler failure, as the native side takes it. */
export interface FailureRecord {
  slot: number;
  /** The delivery's handler id: 0 for a fan-out. */
  delivery: number;
  handler: number;
  handlerName: string;
  message: string;
  name: string;
  stack?: string;
  retryable: boolean;
  timedOut: boolean;
  at: number;
}

/**
 * What the native side keeps of a failure: message, name and stack of
 * whatever was thrown (an Error or not), and whether it may be retried
 * (not when it says `retryable: false`).
 */
export function failureRecord(slot: number, delivery: number, handler: RegisteredHandler, error: unknown, timedOut: boolean): FailureRecord {
  const { message, name, stack, retryable } = summarizeThrown(error);
  const failure: FailureRecord = { slot, delivery, handler: handler.id, handlerName: handler.name, message, name, retryable, timedOut, at: Date.now() };
  if (stack !== undefined) failure.stack = stack;
  return failure;
}

/**
 * Hands `count` acknowledgements and the failures among them to the native
 * side (and applies what comes back). `scheduled`: called from the
 * once-per-checkpoint flush, with nothing of the bus on the stack.
 */
export type Flush = (count: number, failures: FailureRecord[] | undefined, scheduled: boolean) => void;

/**
 * Collects acknowledgements in the shared ack area (and handler failures
 * beside them) and hands them to the native side once per microtask
 * checkpoint: one native call for a whole batch of settled handlers
 * instead of one per event.
 */
export class AckBuffer {
  readonly #ring: AckArea;
  readonly #flush: Flush;
  readonly #afterScheduledFlush: () => void;
  #failures: FailureRecord[] = [];
  #scheduled = false;
  /** While true, the flush waits for `flushHeld` instead of its own microtask. */
  #holdWhile: () => boolean = () => false;
  #held = false;
  /** performance.now() when the hold began. */
  #heldSince = 0;

  constructor(ring: AckArea, flush: Flush, afterScheduledFlush: () => void = () => {}) {
    this.#ring = ring;
    this.#flush = flush;
    this.#afterScheduledFlush = afterScheduledFlush;
  }

  /** Acknowledges a delivery (its failures reported before with `fail`). */
  push(slot: number, handler: number, outcome: number): void {
    // Cannot fill up while every unacknowledged delivery holds a permit and
    // the area is at least the window; flush early rather than overrun.
    if (!this.#ring.ackRoom()) this.drain();
    this.#ring.pushAck(slot, handler, outcome);
    this.#schedule();
  }

  fail(failure: FailureRecord): void {
    this.#failures.push(failure);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (this.#holdWhile()) {
      this.#held = true;
      this.#heldSince = performance.now();
    } else {
      queueMicrotask(this.#scheduledDrain);
    }
  }

  /**
   * Acknowledgements collected while `hold` says so wait for `flushHeld`:
   * the intake holds them during a run of emissions and flushes them where
   * the run ends. When each emission is awaited, handlers settle between
   * two emissions of the same run, and one flush per microtask checkpoint
   * would be one native call per event.
   */
  holdWhile(hold: () => boolean): void {
    this.#holdWhile = hold;
  }

  /**
   * Does the flush the hold deferred, if any (and, with `olderThanMs`, only
   * once it has been held that long); as the scheduled one, with nothing
   * of the bus on the stack.
   */
  flushHeld(olderThanMs = 0): void {
    if (!this.#held || (olderThanMs > 0 && performance.now() - this.#heldSince < olderThanMs)) return;
    this.#held = false;
    this.#scheduledDrain();
  }

  /**
   * The once-per-checkpoint flush. Only here, with nothing of this bus on
   * the stack, may the owner start more deliveries (`afterScheduledFlush`);
   * a flush forced from inside a delivery may not.
   */
  readonly #scheduledDrain = (): void => {
    if (this.#drain(true)) this.#afterScheduledFlush();
  };

  /** Hands what was collected to the native side now. */
  readonly drain = (): void => {
    this.#drain(false);
  };

  /** False when there was nothing to hand over. */
  #drain(scheduled: boolean): boolean {
    this.#scheduled = false;
    this.#held = false;
    const count = this.#ring.takeAcks();
    const failures = this.#failures;
    if (count === 0 && failures.length === 0) return false;
    this.#failures = [];
    this.#flush(count, failures.length > 0 ? failures : undefined, scheduled);
    return true;
  }
}

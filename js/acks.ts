import type { SharedRing } from './ring';

/** Outcome codes shared with src/core/metrics.rs. */
export const OUTCOME = { OK: 0, FAILED: 1, NO_HANDLER: 2 } as const;

/**
 * Collects acknowledgements in the shared ack area and hands them to the
 * native side once per microtask checkpoint: one native call for a whole
 * batch of settled handlers instead of one per event.
 */
export class AckBuffer {
  readonly #ring: SharedRing;
  readonly #flush: (count: number, handlerFailures: number) => void;
  #handlerFailures = 0;
  #scheduled = false;

  constructor(ring: SharedRing, flush: (count: number, handlerFailures: number) => void) {
    this.#ring = ring;
    this.#flush = flush;
  }

  push(slot: number, handler: number, outcome: number, handlerFailures: number): void {
    // Cannot fill up while every unacknowledged delivery holds a permit and
    // the area is at least the window; flush early rather than overrun.
    if (!this.#ring.ackRoom()) this.drain();
    this.#ring.pushAck(slot, handler, outcome);
    this.#handlerFailures += handlerFailures;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.drain);
    }
  }

  readonly drain = (): void => {
    this.#scheduled = false;
    const count = this.#ring.takeAcks();
    if (count === 0) return;
    const failures = this.#handlerFailures;
    this.#handlerFailures = 0;
    this.#flush(count, failures);
  };
}

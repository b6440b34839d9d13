import type { Delivery } from './delivery';

/**
 * Times out deliveries that outlive `handlerTimeout`. Every delivery gets
 * the same timeout, so deadlines arrive in the order deliveries start: a
 * FIFO and one timer armed for its head replace a timer per delivery.
 * Deliveries that settled in time are skipped when they reach the head.
 */
export class TimeoutQueue {
  readonly #timeoutMs: number;
  #queue: Delivery[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** The deadline (performance.now() scale) of a delivery starting now. */
  deadline(): number {
    return this.#timeoutMs > 0 ? performance.now() + this.#timeoutMs : Infinity;
  }

  track(delivery: Delivery): void {
    if (delivery.deadline === Infinity) return;
    // Deliveries mostly settle in the order they start: dropping settled
    // ones from the head here keeps the queue about as long as the window.
    const queue = this.#queue;
    while (this.#head < queue.length && queue[this.#head].done) this.#head++;
    if (this.#head >= 1024 && this.#head * 2 >= queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    this.#queue.push(delivery);
    if (this.#timer === undefined) this.#arm();
  }

  /** Whether no delivery waits for its deadline here. */
  idle(): boolean {
    return this.#timer === undefined;
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#head = 0;
  }

  #arm(): void {
    while (this.#head < this.#queue.length && this.#queue[this.#head].done) this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      this.#timer = undefined;
      return;
    }
    const wait = Math.max(0, this.#queue[this.#head].deadline - performance.now());
    // Unref'd: the bus keeps the process alive while it has open work.
    this.#timer = setTimeout(this.#expire, Math.ceil(wait)).unref();
  }

  readonly #expire = (): void => {
    const now = performance.now();
    while (this.#head < this.#queue.length && this.#queue[this.#head].deadline <= now) {
      const delivery = this.#queue[this.#head++];
      if (!delivery.done) delivery.timeOut(this.#timeoutMs);
    }
    this.#arm();
  };
}

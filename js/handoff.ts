// The consumer side of a hand-off queue (src/core/shm/handoff.rs is the
// producer) and the writer side of its ack area: the main thread's, inside
// the bus's shared buffer, or a worker isolate's, in a buffer of its own.

/** Word offsets of one hand-off region. */
export interface HandoffRegion {
  tail: number;
  head: number;
  pending: number;
  deliveriesBase: number;
  acksBase: number;
  capacity: number;
  deliveryWords: number;
  ackWords: number;
}

/** Receives one delivery: `arena`/`len` locate a serialised event (isolate-handled types). */
export type DeliverFn = (slot: number, handler: number, attempt: number, arena: number, len: number) => void;

/** Where acknowledgements are written before one native `complete(count)` call. */
export interface AckArea {
  ackRoom(): boolean;
  pushAck(slot: number, handler: number, outcome: number): void;
  takeAcks(): number;
}

export class HandoffReader implements AckArea {
  readonly #u32: Uint32Array;
  readonly #r: HandoffRegion;
  #head = 0;
  #acks = 0;

  constructor(u32: Uint32Array, region: HandoffRegion) {
    this.#u32 = u32;
    this.#r = region;
  }

  /**
   * Calls `deliver` for every published delivery. The pending flag is
   * cleared first, so a delivery published after the tail is read triggers
   * a fresh notification instead of being missed; cleared by an exchange,
   * a read-modify-write ordered against the producer's own (`publish` in
   * src/core/shm/handoff.rs, model-checked with loom there). A delivery counts as
   * taken before `deliver` runs: should it throw (a throwing event
   * listener), the next drain goes on after it rather than repeating it.
   */
  drain(deliver: DeliverFn): void {
    const u32 = this.#u32;
    const r = this.#r;
    const mask = r.capacity - 1;
    Atomics.exchange(u32, r.pending, 0);
    let head = this.#head;
    let tail = Atomics.load(u32, r.tail);
    try {
      while (head !== tail) {
        while (head !== tail) {
          const cell = r.deliveriesBase + (head & mask) * r.deliveryWords;
          const slot = u32[cell];
          const handler = u32[cell + 1];
          const attempt = u32[cell + 2];
          const arena = u32[cell + 3];
          const len = u32[cell + 4];
          head = (head + 1) >>> 0;
          this.#head = head;
          deliver(slot, handler, attempt, arena, len);
        }
        Atomics.store(u32, r.head, head);
        tail = Atomics.load(u32, r.tail);
      }
    } finally {
      // The producer counts free cells from this head.
      Atomics.store(u32, r.head, this.#head);
    }
  }

  /** Whether the ack area has room for one more acknowledgement. */
  ackRoom(): boolean {
    return this.#acks < this.#r.capacity;
  }

  pushAck(slot: number, handler: number, outcome: number): void {
    const at = this.#r.acksBase + this.#acks * this.#r.ackWords;
    this.#u32[at] = slot;
    this.#u32[at + 1] = handler;
    this.#u32[at + 2] = outcome;
    this.#acks++;
  }

  /**
   * Hands the `words` the native side wrote back into the ack area (the
   * books' reports, `[slot, code, ...]`) to `books`, before any new
   * acknowledgement overwrites them.
   */
  applyWrittenBack(words: number, books: { apply(reports: ArrayLike<number>, start: number, end: number): void }): void {
    books.apply(this.#u32, this.#r.acksBase, this.#r.acksBase + words);
  }

  /** Number of acknowledgements written since the last call; resets the area. */
  takeAcks(): number {
    const n = this.#acks;
    this.#acks = 0;
    return n;
  }
}

// What a worker isolate tells the main thread through shared memory: the
// deliveries it has started, the one whose synchronous code runs now, and
// the one it blames for its own death. The main thread reads it when the
// isolate dies (to charge the right deliveries, and only those) and while
// it runs (to find a handler stuck in synchronous code past its timeout,
// which no timer inside the isolate can interrupt).

/** A delivery as the native engine keys it. */
export interface DeliveryKey {
  slot: number;
  /** 0 for a fan-out, else the retried handler's id. */
  delivery: number;
}

/** A started delivery and when it started (ms since the epoch). */
export interface StartedDelivery extends DeliveryKey {
  startedAt: number;
  /** -1 while running; else the outcome it finished with, not yet acknowledged. */
  outcome: number;
}

// Float64 words: [blame slot+1, blame delivery, running slot+1, running
// delivery, running since] then, per entry, [slot+1, delivery, started at,
// outcome]. Slot words hold slot + 1 so that 0 means "none". An entry
// lives until the delivery's acknowledgement reached the engine: one that
// finished but whose acknowledgement died with the isolate must not run
// again.
const BLAME = 0;
const RUNNING = 2;
const ENTRIES = 5;
const ENTRY = 4;
const RUNNING_OUTCOME = -1;

/**
 * Written by one isolate only, read by the main thread. Plain (not atomic)
 * Float64 accesses are enough: after the isolate's thread has ended its
 * writes are visible; while it runs, a stale read only delays the hang
 * check by one period.
 */
export class IsolateStatus {
  readonly buffer: SharedArrayBuffer;
  readonly #f: Float64Array;
  readonly #capacity: number;
  readonly #free: number[] = [];

  /** A fresh status for an isolate running up to `capacity` deliveries at once. */
  static create(capacity: number): IsolateStatus {
    return new IsolateStatus(new SharedArrayBuffer((ENTRIES + capacity * ENTRY) * 8));
  }

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#f = new Float64Array(buffer);
    this.#capacity = (this.#f.length - ENTRIES) / ENTRY;
    for (let i = this.#capacity - 1; i >= 0; i--) this.#free.push(i);
  }

  // ---- the isolate's side -------------------------------------------------

  /** Records a delivery starting; returns its entry (-1: table full, not tracked). */
  start(slot: number, delivery: number): number {
    const entry = this.#free.pop();
    if (entry === undefined) return -1;
    const at = ENTRIES + entry * ENTRY;
    this.#f[at + 1] = delivery;
    this.#f[at + 2] = Date.now();
    this.#f[at + 3] = RUNNING_OUTCOME;
    this.#f[at] = slot + 1;
    return entry;
  }

  /** The delivery finished with `outcome`; its acknowledgement is on its way. */
  finished(entry: number, outcome: number): void {
    if (entry >= 0) this.#f[ENTRIES + entry * ENTRY + 3] = outcome;
  }

  /** Its acknowledgement reached the engine. */
  acknowledged(entry: number): void {
    if (entry < 0) return;
    this.#f[ENTRIES + entry * ENTRY] = 0;
    this.#free.push(entry);
  }

  /** Synchronous code of this delivery runs from now (`undefined`: none). */
  running(key: DeliveryKey | undefined): void {
    if (key === undefined) {
      this.#f[RUNNING] = 0;
      return;
    }
    this.#f[RUNNING + 1] = key.delivery;
    this.#f[RUNNING + 2] = Date.now();
    this.#f[RUNNING] = key.slot + 1;
  }

  /** Names the delivery that is killing the isolate; the first blame stands. */
  blame(key: DeliveryKey): void {
    if (this.#f[BLAME] !== 0) return;
    this.#f[BLAME + 1] = key.delivery;
    this.#f[BLAME] = key.slot + 1;
  }

  // ---- the main thread's side ---------------------------------------------

  blamed(): DeliveryKey | undefined {
    return this.#key(BLAME);
  }

  /** The delivery in synchronous code now, and since when. */
  runningNow(): StartedDelivery | undefined {
    const key = this.#key(RUNNING);
    return key && { ...key, startedAt: this.#f[RUNNING + 2], outcome: RUNNING_OUTCOME };
  }

  /** Deliveries started and not yet acknowledged: running, or finished. */
  started(): StartedDelivery[] {
    const out: StartedDelivery[] = [];
    for (let entry = 0; entry < this.#capacity; entry++) {
      const at = ENTRIES + entry * ENTRY;
      const key = this.#key(at);
      if (key) out.push({ ...key, startedAt: this.#f[at + 2], outcome: this.#f[at + 3] });
    }
    return out;
  }

  #key(at: number): DeliveryKey | undefined {
    const slot = this.#f[at];
    return slot === 0 ? undefined : { slot: slot - 1, delivery: this.#f[at + 1] };
  }
}

// The JavaScript side of the shared buffer (src/core/shm/layout.rs has the
// layout, src/core/shm/ring.rs the native half): this thread is the only
// producer of the priority ring; `handoff` is its delivery queue and ack
// area.

import { HandoffReader } from './handoff';
import { native } from './native';

interface Layout {
  magic: number;
  magicValue: number;
  laneCapacity: number;
  handoffCapacity: number;
  lanesBase: number;
  deliveriesBase: number;
  acksBase: number;
  tail: number;
  head: number;
  line: number;
  park: number;
  bytesOut: number;
  deliveryTail: number;
  deliveryHead: number;
  deliveryPending: number;
  workerErrors: number;
  reports: number;
  recordWords: number;
  /** Offsets of a record's words (src/core/shm/layout.rs, `record`). */
  record: { seq: number; slot: number; typeId: number; size: number; enqueuedUs: number; arena: number };
  deliveryWords: number;
  ackWords: number;
}

const L = native.ringLayout() as Layout;
const R = L.record;
/** The park word's request bit (`WAKE` in src/core/shm/park_word.rs). */
const WAKE = 1 << 31;

export class SharedRing {
  /** The view handed to the native side. */
  readonly words: Int32Array;
  readonly laneCapacity: number;
  readonly handoffCapacity: number;
  readonly #u32: Uint32Array;
  readonly #laneMask: number;
  readonly #lanesBase: number;
  readonly #tails = [0, 0, 0];
  /** Bytes pushed, modulo 2^32 (the native side counts bytes taken the same way). */
  #bytesIn = 0;
  /** The main thread's hand-off queue and ack area. */
  readonly handoff: HandoffReader;

  /** Allocates the shared buffer for a bus with this queue size and window. */
  static allocate(maxQueueSize: number, concurrency: number): Int32Array {
    return new Int32Array(new SharedArrayBuffer(native.ringWords(maxQueueSize, concurrency) * 4));
  }

  /** `words` must already be formatted by the native side (`new NativeBus`). */
  constructor(words: Int32Array) {
    const u32 = new Uint32Array(words.buffer, words.byteOffset, words.length);
    if (Atomics.load(u32, L.magic) !== L.magicValue) throw new Error('shared ring buffer is not formatted');
    this.words = words;
    this.#u32 = u32;
    this.laneCapacity = u32[L.laneCapacity];
    this.handoffCapacity = u32[L.handoffCapacity];
    this.#laneMask = this.laneCapacity - 1;
    this.#lanesBase = u32[L.lanesBase];
    this.handoff = new HandoffReader(u32, {
      tail: L.deliveryTail,
      head: L.deliveryHead,
      pending: L.deliveryPending,
      deliveriesBase: u32[L.deliveriesBase],
      acksBase: u32[L.acksBase],
      capacity: this.handoffCapacity,
      deliveryWords: L.deliveryWords,
      ackWords: L.ackWords,
    });
  }

  // ---- priority ring (producer) ------------------------------------------

  /**
   * Appends a record to `lane`, emitted at `enqueuedUs` (engine clock);
   * `arena` locates a serialised event (types handled in isolates; 0:
   * none). False
   * when the lane is full.
   */
  push(lane: number, slot: number, typeId: number, size: number, enqueuedUs: number, arena = 0): boolean {
    const u32 = this.#u32;
    const pos = this.#tails[lane];
    const cell = this.#lanesBase + (lane * this.laneCapacity + (pos & this.#laneMask)) * L.recordWords;
    if (Atomics.load(u32, cell + R.seq) !== pos) return false;
    u32[cell + R.slot] = slot;
    u32[cell + R.typeId] = typeId;
    u32[cell + R.size] = size;
    u32[cell + R.enqueuedUs] = enqueuedUs;
    u32[cell + R.arena] = arena;
    const next = (pos + 1) >>> 0;
    // The sequence store publishes the plain writes above.
    Atomics.store(u32, cell + R.seq, next);
    this.#tails[lane] = next;
    this.#bytesIn = (this.#bytesIn + size) >>> 0;
    return true;
  }

  /**
   * Publishes the lane tails, which the native side reads only to report
   * depths: done before reading metrics rather than on every push.
   */
  publishTails(): void {
    for (let lane = 0; lane < 3; lane++) Atomics.store(this.#u32, L.tail + lane * L.line, this.#tails[lane]);
  }

  /** Records waiting in `lane`. */
  depthOf(lane: number): number {
    const head = Atomics.load(this.#u32, L.head + lane * L.line);
    return (this.#tails[lane] - head) >>> 0;
  }

  depth(): number {
    return this.depthOf(0) + this.depthOf(1) + this.depthOf(2);
  }

  /** Estimated payload bytes waiting in the ring. */
  bytesQueued(): number {
    return (this.#bytesIn - Atomics.load(this.#u32, L.bytesOut)) >>> 0;
  }

  /**
   * True when a consumer is parked and nobody has asked to wake it since it
   * parked; the caller must then call the native `wake()`. Atomics.notify
   * cannot wake a native thread, hence the flag protocol: the park word's
   * count and request bit change only by read-modify-writes on both sides
   * (src/core/shm/park_word.rs explains why that cannot miss a consumer,
   * and `ParkWord::claim` is this step in Rust, model-checked with loom).
   */
  claimWake(): boolean {
    const was = Atomics.or(this.words, L.park, WAKE);
    return (was & WAKE) === 0 && (was & ~WAKE) !== 0;
  }

  /** Times another thread left reports in the engine's books (wrapping counter). */
  reports(): number {
    return Atomics.load(this.#u32, L.reports);
  }

  /** Worker panics so far (wrapping counter). */
  workerErrors(): number {
    return Atomics.load(this.#u32, L.workerErrors);
  }
}

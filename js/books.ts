import type { SlotTable } from './event-record';
import type { Observer } from './observer';

/** `code & 7` of a report: how the event's work ended (src/core/schedule/books.rs). */
const FINISH = { SUCCEEDED: 0, DEAD_LETTERED: 1, UNHANDLED: 2, HANDED_OVER: 3, NONE: 7 } as const;
/** `code & FREED`: nothing in the engine refers to the slot any more. */
const FREED = 8;

/**
 * What the main thread keeps of the engine's books (src/core/schedule/books.rs),
 * which are the only ones: which accepted events are still open, so the
 * process stays alive and a shutdown knows when the bus has drained and
 * what was still running. The engine says when an event's work has ended
 * (and how) and when its slot may be freed; nothing here is worked out
 * from delivery outcomes.
 */
export class Books {
  readonly #slots: SlotTable;
  readonly #observer: Observer;
  /** Frees what an event holds besides its slot (its arena block). */
  readonly #freeExtra: (slot: number) => void;
  /** Whether open events should keep the process alive (the bus runs). */
  readonly #holding: () => boolean;
  /** Per slot: 1 while the event is open (accepted, its work not ended). */
  #open = new Uint8Array(64);
  /** Open events. */
  #outstanding = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  /** Called when the last open event's work ends (a shutdown waiting to drain). */
  onDrained: (() => void) | undefined;

  constructor(slots: SlotTable, observer: Observer, freeExtra: (slot: number) => void, holding: () => boolean) {
    this.#slots = slots;
    this.#observer = observer;
    this.#freeExtra = freeExtra;
    this.#holding = holding;
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  isOpen(slot: number): boolean {
    return this.#open[slot] === 1;
  }

  /** The event went into the queue (or runs again: a dead letter replayed). */
  opened(slot: number): void {
    if (slot >= this.#open.length) {
      const grown = new Uint8Array(Math.max(this.#open.length * 2, slot + 1));
      grown.set(this.#open);
      this.#open = grown;
    }
    if (this.#open[slot] === 1) return;
    this.#open[slot] = 1;
    if (this.#outstanding++ === 0 && this.#holding()) this.hold();
  }

  /**
   * The event will not run here (left over at shutdown, reported there;
   * or queued before the workers failed, and handled inline instead):
   * counted neither as success nor failure.
   */
  abandoned(slot: number): void {
    this.#close(slot);
  }

  /** Applies the engine's reports, `[slot, code, ...]`, those from `start` to `end`. */
  apply(reports: ArrayLike<number>, start = 0, end = reports.length): void {
    for (let i = start; i < end; i += 2) {
      const slot = reports[i];
      const code = reports[i + 1];
      const finish = code & 7;
      if (finish !== FINISH.NONE && this.#open[slot] === 1) {
        // Handed over: the group's retry set holds the rest; no outcome here.
        if (finish === FINISH.HANDED_OVER) this.#observer.handedOver();
        else if (finish === FINISH.UNHANDLED) this.#observer.unhandled();
        else this.#observer.finished(finish === FINISH.DEAD_LETTERED);
        this.#close(slot);
      }
      if ((code & FREED) !== 0 && this.#open[slot] !== 1 && this.#slots.has(slot)) this.release(slot);
    }
  }

  #close(slot: number): void {
    if (this.#open[slot] !== 1) return;
    this.#open[slot] = 0;
    if (--this.#outstanding === 0) {
      this.releaseProcess();
      this.onDrained?.();
    }
  }

  /** Frees the slot and the event's arena block, if any. */
  release(slot: number): void {
    this.#freeExtra(slot);
    this.#slots.release(slot);
  }

  /** Keeps the event loop alive while accepted events are open. */
  hold(): void {
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  releaseProcess(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }
}

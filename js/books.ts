import type { SlotTable } from './event-record';
import type { Observer } from './observer';

/**
 * The main thread's books on accepted events: how much open work each has
 * (a delivery queued or running, a retry waiting), which dead letters
 * still hold it, and how many events have open work at all, which keeps
 * the process alive and tells a shutdown when the bus has drained. An
 * event's slot is freed once it has neither work nor dead letters.
 */
export class Books {
  readonly #slots: SlotTable;
  readonly #observer: Observer;
  /** Frees what an event holds besides its slot (its arena block). */
  readonly #freeExtra: (slot: number) => void;
  /** Whether open work should keep the process alive (the bus runs). */
  readonly #holding: () => boolean;
  /** Accepted events with open work (queued, running, waiting to retry). */
  #outstanding = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  /** Called when the last open work ends (a shutdown waiting to drain). */
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

  /** A new event was accepted into the queue. */
  accepted(): void {
    if (this.#outstanding++ === 0 && this.#holding()) this.hold();
  }

  /** An event queued before the bus ran is now handled inline instead. */
  handedInline(): void {
    this.#outstanding--;
  }

  addWork(slot: number, n = 1): void {
    if (!this.#slots.hasWork(slot) && this.#outstanding++ === 0 && this.#holding()) this.hold();
    this.#slots.addWork(slot, n);
  }

  addLetter(slot: number): void {
    this.#slots.addLetter(slot);
  }

  /**
   * One piece of an event's open work ended: `done` when it ran,
   * `abandoned` when it never ran (left over at shutdown: reported there,
   * counted neither as success nor failure), `unhandled` when no handler
   * was registered for it (counted as such).
   */
  finishWork(slot: number, how: 'done' | 'abandoned' | 'unhandled' = 'done'): void {
    if (!this.#slots.finishWork(slot)) return;
    if (how === 'unhandled') this.#observer.unhandled();
    else if (how === 'done') this.#observer.finished(this.#slots.hasLetters(slot));
    this.releaseIfIdle(slot);
    if (--this.#outstanding === 0) {
      this.releaseProcess();
      this.onDrained?.();
    }
  }

  /** Its dead letters are gone (replayed, removed, evicted). */
  dropLetters(slots: readonly number[]): void {
    for (const slot of slots) {
      this.#slots.removeLetter(slot);
      this.releaseIfIdle(slot);
    }
  }

  releaseIfIdle(slot: number): void {
    if (this.#slots.idle(slot)) this.release(slot);
  }

  /** Frees the slot and the event's arena block, if any. */
  release(slot: number): void {
    this.#freeExtra(slot);
    this.#slots.release(slot);
  }

  /** Keeps the event loop alive while accepted events have open work. */
  hold(): void {
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  releaseProcess(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }
}

import type { EventHandlerLike, IEvent, SyncDeadLetter } from '../../index';
import { BusError } from '../errors';
import { checkType, describe, HandlerRegistry } from '../handlers';

/**
 * The synchronous event bus BootifyJS projects start with: `emit` runs
 * every handler of the event's type at once, on the calling thread, with
 * the event object itself. A handler that throws or rejects does not stop
 * the others; its failure is kept in a bounded dead-letter list and
 * available from `getDeadLetterQueue()`.
 */
export class EventBusService {
  readonly #registry = new HandlerRegistry(() => {});
  readonly #deadLetters: SyncDeadLetter[] = [];
  readonly #maxDeadLetters: number;

  constructor(options: { maxDeadLetters?: number } = {}) {
    this.#maxDeadLetters = options.maxDeadLetters ?? 1000;
  }

  subscribe<E extends IEvent = IEvent>(eventType: string, handler: EventHandlerLike<E>): () => void {
    const entry = this.#registry.add(eventType, handler);
    return () => this.#registry.removeEntry(entry);
  }

  unsubscribe(eventType: string, handler?: EventHandlerLike): boolean {
    return this.#registry.remove(eventType, handler);
  }

  /** Runs every handler of `event.type`; resolves once they have all settled. Never rejects for a handler's failure. */
  emit(event: IEvent): Promise<void> {
    if (event === null || typeof event !== 'object') {
      return Promise.reject(new BusError('INVALID_EVENT_TYPE', `emit() takes an event object, got ${describe(event)}`, { field: 'event' }));
    }
    try {
      checkType(event.type);
    } catch (err) {
      return Promise.reject(err);
    }
    const handlers = this.#registry.forType(this.#registry.typeId(event.type));
    const pending: Promise<void>[] = [];
    for (const handler of handlers) {
      const failed = (error: unknown): void => this.#deadLetter(event, handler.name, error);
      try {
        const result = handler.fn.call(handler.thisArg, event);
        if (result instanceof Promise) pending.push(result.then(() => undefined, failed));
      } catch (error) {
        failed(error);
      }
    }
    return pending.length === 0 ? Promise.resolve() : Promise.all(pending).then(() => undefined);
  }

  getDeadLetterQueue(): SyncDeadLetter[] {
    return [...this.#deadLetters];
  }

  clearDeadLetterQueue(): number {
    return this.#deadLetters.splice(0).length;
  }

  #deadLetter(event: IEvent, handler: string, error: unknown): void {
    if (this.#deadLetters.length >= this.#maxDeadLetters) this.#deadLetters.shift();
    this.#deadLetters.push({ event, handler, error, timestamp: Date.now() });
  }
}

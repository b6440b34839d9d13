import type { EventHandlerLike } from '../index';
import { BusError, errorText } from './errors';
import { readSafely, textOf } from './hostile';

export interface RegisteredHandler {
  readonly id: number;
  readonly type: string;
  /** For error reports and the dead-letter queue. */
  readonly name: string;
  /**
   * Stable across processes, for a Redis group's retries: its name, with
   * `#2`, `#3`… for a second, third handler of the same name on the type
   * (registration order). See `keyFor`.
   */
  readonly key: string;
  readonly source: EventHandlerLike;
  readonly fn: (event: unknown) => unknown;
  /** `this` for the call: the handler object, so class handlers keep their instance. */
  readonly thisArg: unknown;
}

const NONE: readonly RegisteredHandler[] = Object.freeze([]);

/**
 * Handlers by event type, and the interned numeric ids the ring carries
 * instead of type strings. Per-type lists are replaced, never mutated, so a
 * fan-out in progress keeps the list it started with.
 */
export class HandlerRegistry {
  readonly #typeIds = new Map<string, number>();
  readonly #types: string[] = [];
  readonly #byType: (readonly RegisteredHandler[])[] = [];
  /** Per type: whether `forType` handed the current array out. */
  readonly #handedOut: boolean[] = [];
  readonly #byId = new Map<number, RegisteredHandler>();
  /** Per type id: handled in worker isolates rather than on this thread. */
  readonly #isolated: boolean[] = [];
  /** Per type id: handlers registered so far under each name (for `#keyFor`). */
  readonly #names: Map<string, number>[] = [];
  /** Per type, every key handed out (a key names one handler only). */
  readonly #keys: Set<string>[] = [];
  readonly #onCountChange: (typeId: number, count: number) => void;
  readonly #onNewType: (typeId: number, type: string) => void;
  #nextId = 1;

  constructor(onCountChange: (typeId: number, count: number) => void, onNewType: (typeId: number, type: string) => void = () => {}) {
    this.#onCountChange = onCountChange;
    this.#onNewType = onNewType;
  }

  typeId(type: string): number {
    let id = this.#typeIds.get(type);
    if (id === undefined) {
      id = this.#types.length;
      this.#types.push(type);
      this.#byType.push(NONE);
      this.#typeIds.set(type, id);
      this.#onNewType(id, type);
    }
    return id;
  }

  /** Every type seen so far, by type id. */
  types(): readonly string[] {
    return this.#types;
  }

  typeName(typeId: number): string {
    return this.#types[typeId];
  }

  /**
   * The handlers of a type. The array is handed out as a snapshot (a
   * running delivery iterates it), so the next change copies it; changes
   * in a row with no read between append in place, which keeps
   * registering many handlers linear.
   */
  forType(typeId: number): readonly RegisteredHandler[] {
    const list = this.#byType[typeId];
    if (list === undefined) return NONE;
    this.#handedOut[typeId] = true;
    return list;
  }

  #appendable(typeId: number): RegisteredHandler[] {
    let list = this.#byType[typeId] ?? NONE;
    if (list === NONE || this.#handedOut[typeId]) {
      list = [...list];
      this.#byType[typeId] = list;
      this.#handedOut[typeId] = false;
    }
    return list as RegisteredHandler[];
  }

  byId(id: number): RegisteredHandler | undefined {
    return this.#byId.get(id);
  }

  isIsolated(typeId: number): boolean {
    return this.#isolated[typeId] === true;
  }

  /**
   * Records a handler that runs in worker isolates; it cannot run here.
   * A type's handlers all run on one side: this thread or the isolates.
   */
  addWorker(type: unknown, name: string): RegisteredHandler {
    const t = checkType(type);
    const typeId = this.typeId(t);
    if (!this.#isolated[typeId] && (this.#byType[typeId] ?? NONE).length > 0) {
      throw new BusError('INVALID_HANDLER', `'${t}' already has main-thread handlers; a type's handlers run either on the main thread or in worker isolates`, {
        field: 'eventType',
      });
    }
    this.#isolated[typeId] = true;
    const fn = (): never => {
      throw new BusError('NATIVE_ERROR', `worker handler ${name} was called on the main thread`);
    };
    const entry: RegisteredHandler = { id: this.#nextId++, type: t, name, key: this.#keyFor(typeId, name), source: fn, fn, thisArg: undefined };
    const list = this.#appendable(typeId);
    list.push(entry);
    this.#byId.set(entry.id, entry);
    this.#onCountChange(typeId, list.length);
    return entry;
  }

  add(type: unknown, handler: unknown): RegisteredHandler {
    const t = checkType(type);
    if (this.#isolated[this.typeId(t)]) {
      throw new BusError('INVALID_HANDLER', `'${t}' is handled in worker isolates; a type's handlers run either on the main thread or in worker isolates`, {
        field: 'eventType',
      });
    }
    let fn: (event: unknown) => unknown;
    let thisArg: unknown;
    let name: string;
    let handle: unknown;
    if (typeof handler === 'function') {
      fn = handler as (event: unknown) => unknown;
      thisArg = undefined;
      name = textOf(readSafely(handler, 'name', '')) || 'anonymous';
    } else if (typeof (handle = handler !== null && typeof handler === 'object' ? readHandle(handler, t) : undefined) === 'function') {
      fn = handle as (event: unknown) => unknown;
      thisArg = handler;
      const ctor = readSafely(handler as object, 'constructor');
      const owner = typeof ctor === 'function' ? readSafely(ctor, 'name') : undefined;
      name = typeof owner === 'string' && owner && owner !== 'Object' ? `${owner}.handle` : textOf(readSafely(fn, 'name', '')) || 'anonymous';
    } else {
      throw new BusError(
        'INVALID_HANDLER',
        `handler for '${t}' must be a function or an object with a handle(event) method, got ${describe(handler)}`,
        { field: 'handler', eventType: t },
      );
    }
    const typeId = this.typeId(t);
    const entry: RegisteredHandler = { id: this.#nextId++, type: t, name, key: this.#keyFor(typeId, name), source: handler as EventHandlerLike, fn, thisArg };
    const list = this.#appendable(typeId);
    list.push(entry);
    this.#byId.set(entry.id, entry);
    this.#onCountChange(typeId, list.length);
    return entry;
  }

  /**
   * A new handler's key: its name (`Class.method` for `@OnEvent`, the
   * function's name, `Class.handle` for handler objects) for the first
   * handler of that name on the type, then the name with `#2`, `#3`… in
   * registration order (removed handlers keep their number), skipping a
   * key another name already has (a function named `foo#2`). Processes that
   * register the same handlers in the same order agree on every key.
   */
  #keyFor(typeId: number, name: string): string {
    const seen = (this.#names[typeId] ??= new Map<string, number>());
    const issued = (this.#keys[typeId] ??= new Set<string>());
    let n = seen.get(name) ?? 0;
    let key: string;
    do {
      n++;
      key = n === 1 ? name : `${name}#${n}`;
    } while (issued.has(key));
    seen.set(name, n);
    issued.add(key);
    return key;
  }

  /** Every handler registered now, of every type. */
  all(): RegisteredHandler[] {
    return [...this.#byId.values()];
  }

  /** Whether `type` has handlers now. */
  has(type: string): boolean {
    const typeId = this.#typeIds.get(type);
    return typeId !== undefined && (this.#byType[typeId] ?? NONE).length > 0;
  }

  remove(type: unknown, handler?: unknown): boolean {
    const t = checkType(type);
    const typeId = this.#typeIds.get(t);
    if (typeId === undefined) return false;
    const before = this.forType(typeId);
    const after = handler === undefined ? NONE : before.filter((h) => h.source !== handler);
    if (after.length === before.length) return false;
    for (const h of before) if (!after.includes(h)) this.#byId.delete(h.id);
    this.#byType[typeId] = after.length ? after : NONE;
    this.#onCountChange(typeId, after.length);
    return true;
  }

  removeEntry(entry: RegisteredHandler): void {
    const typeId = this.#typeIds.get(entry.type);
    if (typeId === undefined || !this.#byId.has(entry.id)) return;
    this.#byId.delete(entry.id);
    this.#byType[typeId] = this.forType(typeId).filter((h) => h !== entry);
    this.#onCountChange(typeId, this.#byType[typeId].length);
  }
}

/** Validates an event type: a non-empty string. */
export function checkType(type: unknown): string {
  if (typeof type !== 'string' || type.length === 0) {
    throw new BusError('INVALID_EVENT_TYPE', `event type must be a non-empty string, got ${describe(type)}`, {
      field: 'type',
    });
  }
  return type;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return typeof value === 'undefined' ? 'undefined' : `${typeof value} ${String(value)}`;
}

/** `handler.handle`, read once; a getter that throws is an INVALID_HANDLER naming the type. */
function readHandle(handler: object, type: string): unknown {
  try {
    return (handler as { handle?: unknown }).handle;
  } catch (err) {
    throw new BusError('INVALID_HANDLER', `reading handle of the handler for '${type}' threw: ${errorText(err)}`, { field: 'handler', eventType: type });
  }
}

import type { AsyncResource } from 'node:async_hooks';
import { inspect } from 'node:util';
import type { BufferedEvent, EventPriority, QueuedEvent } from '../index';
import type { Delivery } from './delivery';

export const LANES: readonly EventPriority[] = ['critical', 'normal', 'low'];

/** Finds the signal of the delivery an event is running in, for `event.signal`. */
export interface DeliveryLookup {
  signalOf(slot: number): AbortSignal | undefined;
}

const LOOKUP = Symbol('bootify.lookup');
const SLOT = Symbol('bootify.slot');
/** Set on the copies later deliveries (retries, replays) get. */
const OWN = Symbol('bootify.delivery');
const NEVER_ABORTED = new AbortController().signal;

/**
 * Prototype of handler events: gives them `signal` without an own property
 * per event. An event built at emission outlives a garbage-collector cycle
 * or two, so it refers to its delivery only by slot: a reference from it to
 * the young delivery object would keep that object alive through the next
 * collection (measured: scavenges twice as slow). Event objects are
 * otherwise plain: the payload's own fields, then the event's.
 */
class HandlerEvent {
  [LOOKUP]: DeliveryLookup | undefined = undefined;
  [SLOT] = -1;
  // Declared here, though set after the payload's fields, because V8 sizes
  // instances by the fields the class declares (plus 8): with these four,
  // an event with a payload of up to three fields keeps every field inside
  // the object, instead of spilling two into a property array allocated
  // per event. `timestamp` starts as undefined so V8 keeps the field
  // tagged: events of one run then share the clock's number instead of
  // each boxing a copy.
  timestamp: number | undefined = undefined;
  retryCount = 0;

  /** Aborted when the handler times out or the bus is shut down at its deadline. */
  get signal(): AbortSignal {
    const own = (this as { [OWN]?: Delivery })[OWN];
    return (own !== undefined ? own.signal : this[LOOKUP]?.signalOf(this[SLOT])) ?? NEVER_ABORTED;
  }

  /**
   * Ignored: the event's own `signal` wins over a payload field of that name
   * (which stays under `event.payload`), as every event field does.
   * Without a setter, copying such a payload in would throw.
   */
  set signal(_ignored: unknown) {}

  /** Prints as the event that was emitted, without the bus's bookkeeping. */
  [inspect.custom](_depth: number, options: object, show: typeof inspect): string {
    const view: Record<string, unknown> = Object.create(EventView.prototype);
    for (const key of Object.keys(this)) view[key] = (this as unknown as Record<string, unknown>)[key];
    return show(view, options);
  }
}

/** Names the printed view of a handler event. */
class EventView {}
Object.defineProperty(EventView, 'name', { value: 'BufferedEvent' });

/** An event recovered from a journal, as `LazyEvents.build` gives it. */
export interface RecoveredFields {
  id: string;
  type: string;
  payload: unknown;
  correlationId: string | undefined;
  timestamp: number;
  /** Why the event cannot run (its payload could not be decoded, and is then `undefined`): it fails, not retried, into the dead-letter queue. */
  failure?: string;
  /** The failure's error name (default `JournalDecodeError`). */
  failureName?: string;
}

/** Why a recovered event cannot run: the error its delivery fails with. */
export interface Unrunnable {
  name: string;
  message: string;
}

/** Where recovered events come from; each is built the first time it is needed. */
export interface LazyEvents {
  build(index: number): RecoveredFields;
}

/** Stands in a slot for a recovered event not yet built. */
const LAZY = Object.freeze({ lazy: true }) as unknown as MutableEvent;

/**
 * Accepted events by slot; the slot number is what the ring carries. Kept
 * as parallel arrays rather than one object per event: emitting allocates
 * nothing here once the table has grown, and the GC has less to trace.
 * The payload stays on this thread, so it keeps its identity.
 */
export class SlotTable {
  readonly #lookup: DeliveryLookup;
  /**
   * The object handlers receive, built at emission while the payload is
   * still hot in cache (building it at delivery measured 4x slower).
   */
  #events: (MutableEvent | undefined)[] = [];
  /** The async context of the emission, handlers run in (`propagateContext`). */
  #contexts: (AsyncResource | undefined)[] = [];
  #typeIds = new Uint32Array(64);
  #lanes = new Uint8Array(64);
  /** The serialised event in the arena (types handled in isolates); length 0 = none. */
  #arenaOffset = new Uint32Array(64);
  #arenaLength = new Uint32Array(64);
  /** Recovered events not yet built: their index in `#lazy`. */
  #lazy: LazyEvents | undefined;
  #lazyIndex = new Int32Array(64);
  /** Recovered events whose payload could not be decoded, and why. */
  readonly #undecodable = new Map<number, Unrunnable>();
  readonly #free: number[] = [];
  #next = 0;
  #live = 0;

  constructor(lookup: DeliveryLookup) {
    this.#lookup = lookup;
  }

  get live(): number {
    return this.#live;
  }

  /** `correlationId` undefined means "the event id". */
  add(id: string, type: string, typeId: number, payload: unknown, lane: number, correlationId: string | undefined, timestamp: number): number {
    // The event first: copying the payload's fields may throw (a getter),
    // and must not leave a slot taken.
    const event = handlerEvent(id, type, payload, lane, correlationId ?? id, timestamp);
    const slot = this.#take(event, typeId, lane);
    event[LOOKUP] = this.#lookup;
    event[SLOT] = slot;
    return slot;
  }

  /** A free slot, holding `event` from now on. */
  #take(event: MutableEvent, typeId: number, lane: number): number {
    const slot = this.#free.length > 0 ? (this.#free.pop() as number) : this.#grow();
    this.#events[slot] = event;
    this.#typeIds[slot] = typeId;
    this.#lanes[slot] = lane;
    this.#arenaLength[slot] = 0;
    this.#live++;
    return slot;
  }

  /**
   * A recovered event, built from `source` only when something reads it
   * (recovering a million events must not decode a million payloads).
   */
  addLazy(source: LazyEvents, index: number, typeId: number, lane: number): number {
    const slot = this.#take(LAZY, typeId, lane);
    this.#lazy = source;
    this.#lazyIndex[slot] = index;
    return slot;
  }

  #grow(): number {
    const slot = this.#next++;
    if (slot === this.#lanes.length) {
      const size = slot * 2;
      this.#typeIds = resized(this.#typeIds, new Uint32Array(size));
      this.#lanes = resized(this.#lanes, new Uint8Array(size));
      this.#arenaOffset = resized(this.#arenaOffset, new Uint32Array(size));
      this.#arenaLength = resized(this.#arenaLength, new Uint32Array(size));
      this.#lazyIndex = resized(this.#lazyIndex, new Int32Array(size));
    }
    return slot;
  }

  #get(slot: number): MutableEvent {
    const event = this.#events[slot];
    return event === LAZY ? this.#build(slot) : (event as MutableEvent);
  }

  #build(slot: number): MutableEvent {
    const f = (this.#lazy as LazyEvents).build(this.#lazyIndex[slot]);
    const event = handlerEvent(f.id, f.type, f.payload, this.#lanes[slot], f.correlationId ?? f.id, f.timestamp);
    event[LOOKUP] = this.#lookup;
    event[SLOT] = slot;
    this.#events[slot] = event;
    if (f.failure !== undefined) {
      const name = f.failureName ?? 'JournalDecodeError';
      const message = name === 'JournalDecodeError' ? `the recovered event's payload could not be decoded: ${f.failure}` : f.failure;
      this.#undecodable.set(slot, { name, message });
    }
    return event;
  }

  /** Why a recovered event cannot run, if it cannot. */
  undecodable(slot: number): Unrunnable | undefined {
    if (this.#events[slot] === LAZY) this.#build(slot);
    return this.#undecodable.size === 0 ? undefined : this.#undecodable.get(slot);
  }

  has(slot: number): boolean {
    return this.#events[slot] !== undefined;
  }

  id(slot: number): string {
    return this.#get(slot).id;
  }

  type(slot: number): string {
    return this.#get(slot).type;
  }

  typeId(slot: number): number {
    return this.#typeIds[slot];
  }

  lane(slot: number): number {
    return this.#lanes[slot];
  }

  setArena(slot: number, offset: number, length: number): void {
    this.#arenaOffset[slot] = offset;
    this.#arenaLength[slot] = length;
  }

  /** `[offset, length]` of the event's arena block, if it has one. */
  arenaOf(slot: number): [number, number] | undefined {
    const length = this.#arenaLength[slot];
    return length > 0 ? [this.#arenaOffset[slot], length] : undefined;
  }

  setContext(slot: number, context: AsyncResource): void {
    this.#contexts[slot] = context;
  }

  context(slot: number): AsyncResource | undefined {
    return this.#contexts[slot];
  }

  release(slot: number): void {
    if (this.#events[slot] === undefined) return;
    this.#events[slot] = undefined;
    this.#contexts[slot] = undefined;
    if (this.#undecodable.size > 0) this.#undecodable.delete(slot);
    this.#free.push(slot);
    this.#live--;
  }

  /** Slots of every live event. */
  slots(): number[] {
    const out: number[] = [];
    for (let slot = 0; slot < this.#next; slot++) if (this.#events[slot] !== undefined) out.push(slot);
    return out;
  }

  /**
   * The event `delivery` hands its handlers. The first delivery gets the
   * object built at emission; any later one (a retry, a replay) gets its own
   * copy, so a handler still holding an older one sees neither its
   * `retryCount` nor its `signal` change.
   */
  eventFor(slot: number, delivery: Delivery): BufferedEvent {
    const event = this.#get(slot);
    if (delivery.attempt === 0 && delivery.handlerId === 0) return event as unknown as BufferedEvent;
    const copy = Object.assign(new HandlerEvent(), event) as unknown as MutableEvent;
    copy[OWN] = delivery;
    copy.retryCount = delivery.attempt;
    return copy as unknown as BufferedEvent;
  }

  /** The event as built at emission, for inline handling. */
  event(slot: number): BufferedEvent {
    return this.#get(slot) as unknown as BufferedEvent;
  }

  queuedEvent(slot: number): QueuedEvent {
    const e = this.#get(slot);
    return {
      id: e.id,
      type: e.type,
      payload: e.payload,
      priority: e.priority,
      correlationId: e.correlationId,
      timestamp: e.timestamp,
    };
  }
}

interface MutableEvent {
  [LOOKUP]: DeliveryLookup | undefined;
  [SLOT]: number;
  /** Only on copies (retries, replays). */
  [OWN]?: Delivery;
  id: string;
  type: string;
  payload: unknown;
  correlationId: string;
  priority: EventPriority;
  timestamp: number;
  retryCount: number;
}

/**
 * The payload's own fields, then the event's (which win on a name clash),
 * so `event.email` and `event.payload.email` both work. (`timestamp` and
 * `retryCount` come first in key order: see HandlerEvent.)
 * Object.assign then plain stores: ~60 ns, where an object spread with the
 * extra fields took over 5 µs (V8 leaves its fast path).
 */
function handlerEvent(id: string, type: string, payload: unknown, lane: number, correlationId: string, timestamp: number): MutableEvent {
  const event = new HandlerEvent() as unknown as MutableEvent;
  if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) Object.assign(event, payload);
  event.id = id;
  event.type = type;
  event.payload = payload;
  event.correlationId = correlationId;
  event.priority = LANES[lane];
  event.timestamp = timestamp;
  event.retryCount = 0;
  return event;
}

function resized<T extends { set(a: ArrayLike<number>): void }>(from: ArrayLike<number>, to: T): T {
  to.set(from);
  return to;
}

/**
 * `Date.now()` costs ~60 ns on the machines this was measured on, more than
 * the rest of queueing an event. Emissions in one synchronous run share a
 * reading, refreshed every 256 emissions and whenever the owner says
 * (`invalidate`: the intake does at every microtask hop that saw an
 * emission), so a timestamp is never staler than 256 emissions of one
 * synchronous run (well under a millisecond). It also keeps the engine's
 * microsecond clock, which ring records carry so the native side can
 * measure queue waits.
 */
export class CoarseClock {
  /** Starts undefined so the field stays tagged (see HandlerEvent.timestamp). */
  #wallMs: number | undefined = undefined;
  #engineUs = 0;
  #uses = 0;
  #valid = false;
  /** Engine µs minus performance.now() µs, measured once. */
  readonly #offsetUs: number;

  constructor(engineNowUs: () => number) {
    const before = performance.now();
    const engine = engineNowUs();
    this.#offsetUs = engine - ((before + performance.now()) / 2) * 1000;
  }

  /** Wall-clock ms (`Date.now()`), possibly shared with this run's other emissions. */
  now(): number {
    if (this.#valid && ++this.#uses < 256) return this.#wallMs as number;
    this.#valid = true;
    this.#uses = 0;
    this.#wallMs = Date.now();
    // Never 0: the native side reads 0 as "no timestamp".
    this.#engineUs = (performance.now() * 1000 + this.#offsetUs) >>> 0 || 1;
    return this.#wallMs as number;
  }

  /** The next `now()` reads the clocks. */
  invalidate(): void {
    this.#valid = false;
  }

  /** The engine clock (µs, wrapping at 2^32) at the last `now()`. */
  get engineUs(): number {
    return this.#engineUs;
  }
}

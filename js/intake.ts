// Accepting events, and reading what user code hands to emitEvent and
// getDeadLetterQueue. Every value is hostile: reading a property may
// throw, and the error must still be a BusError naming the field.
import { AsyncResource } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type { DeadLetterPage, EventOptions } from '../index';
import type { Dispatcher } from './dispatch';
import { BusError, errorText } from './errors';
import { CoarseClock } from './event-record';
import { checkType, describe } from './handlers';
import type { Serialised } from './isolates/handlers';
import type { Journal } from './journal';
import type { Streams } from './streams';
import { encodeWirePayload, envelope } from './wire-codec';
import { ENCODING } from './arena';
import { type Encoded, encodedEnvelope, encodePayload } from './journal-codec';
import type { BusParts } from './parts';
import { measuredFlat, measurePayload } from './payload';

/** measurePayload, with what a hostile payload throws (a getter, a Proxy trap, nesting past the stack) as INVALID_PAYLOAD. */
export function measure(payload: unknown, limit: number, overhead: number): number {
  try {
    return measurePayload(payload, limit, overhead);
  } catch (err) {
    if (err instanceof BusError) throw err;
    const why = err instanceof RangeError ? 'is nested too deeply to be measured' : `could not be read: ${errorText(err)}`;
    throw new BusError('INVALID_PAYLOAD', `payload ${why}`, { field: 'payload' });
  }
}

/** The lane (0 critical, 1 normal, 2 low) and correlation id an emission asks for. */
export function readEmitOptions(options: EventOptions | undefined): { lane: number; correlationId: string | undefined } {
  let priority: unknown;
  let given: unknown;
  if (options !== undefined) {
    if (options === null || typeof options !== 'object') {
      throw new BusError('INVALID_ARGUMENT', `options must be an object like { priority: 'critical' }, got ${describe(options)}`, { field: 'options' });
    }
    try {
      priority = options.priority;
      given = options.correlationId;
    } catch (err) {
      throw new BusError('INVALID_ARGUMENT', `reading options threw: ${errorText(err)}`, { field: 'options' });
    }
  }
  const lane = priority === undefined || priority === 'normal' ? 1 : priority === 'critical' ? 0 : priority === 'low' ? 2 : -1;
  if (lane < 0) {
    throw new BusError('INVALID_PRIORITY', `priority must be 'critical', 'normal' or 'low', got ${describe(priority)}`, {
      field: 'priority',
    });
  }
  if (given !== undefined && typeof given !== 'string') {
    throw new BusError('INVALID_ARGUMENT', `correlationId must be a string, got ${describe(given)}`, {
      field: 'correlationId',
    });
  }
  return { lane, correlationId: given };
}

/** `{ offset, limit }` of getDeadLetterQueue, each absent or an integer 0..2^32-1. */
export function readPage(page: DeadLetterPage | undefined): { offset?: number; limit?: number } {
  if (page === undefined) return {};
  if (page === null || typeof page !== 'object') {
    throw new BusError('INVALID_ARGUMENT', `getDeadLetterQueue takes { offset, limit }, got ${describe(page)}`, { field: 'page' });
  }
  return { offset: pageField(page, 'offset'), limit: pageField(page, 'limit') };
}

function pageField(page: DeadLetterPage, field: 'offset' | 'limit'): number | undefined {
  let value: unknown;
  try {
    value = page[field];
  } catch (err) {
    throw new BusError('INVALID_ARGUMENT', `reading ${field} threw: ${errorText(err)}`, { field });
  }
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new BusError('INVALID_ARGUMENT', `${field} must be an integer from 0 to 4294967295, got ${describe(value)}`, { field });
  }
  return value;
}

/** A dead-letter id argument: absent (where allowed) or a positive integer. */
export function checkLetterId(id: number | undefined, method: string): void {
  if (id !== undefined && (!Number.isInteger(id) || id < 1)) {
    throw new BusError('INVALID_ARGUMENT', `${method} takes a dead-letter id (a positive integer), got ${describe(id)}`, {
      field: 'id',
    });
  }
}

/** Bus states, as intake sees them. */
export type State = 'created' | 'running' | 'inline' | 'failed' | 'draining' | 'stopped';

/** Context carriers are dropped with their slot; no destroy hook is owed. */
const NO_DESTROY = { requireManualDestroy: true } as const;
/** How often a full queue is logged while it stays full. */
const OVERFLOW_LOG_MS = 10_000;

export interface IntakeHost extends BusParts {
  readonly dispatch: Dispatcher;
  /** A durable bus's journal. */
  readonly journal: Journal | undefined;
  /** A bus on Redis: events go to the group, not the ring. */
  readonly streams: Streams | undefined;
  state(): State;
}

type Limit = 'maxQueueSize' | 'maxMemoryMB' | 'journal.maxDiskMB';

/**
 * How long (ms) a run may last, and hold acknowledgements, before the next
 * microtask hop ends it (or hands them back); see Intake.#endRun. A fast
 * awaited producer fills a run well within it; a slow one (a request
 * handler working between two emits) gets one run per emit, as before
 * runs spanned hops.
 */
const RUN_MS = 0.25;
/** Most emissions one run of them takes before it is dispatched; see Intake.#endRun. */
const RUN_MAX = 64;
/**
 * Microtask hops without an emission that end a run. `await
 * bus.emitEvent()` emits once per hop; a service method that returns the
 * emission's promise, awaited by its caller, once every three (measured on
 * Node 20); six leave room for another layer. Each costs tens of ns.
 */
const QUIET_HOPS = 6;

/**
 * Accepting an emitted event: checked, given an id and a slot, serialised
 * if isolates handle it, and pushed into the ring (or handled inline, or
 * refused, when the queue is full). This thread is the ring's only producer.
 */
export class Intake {
  readonly #h: IntakeHost;
  #overflows = 0;
  #overflowLogged = -Infinity;
  readonly #clock: CoarseClock;
  readonly #idPrefix = `${randomBytes(4).toString('hex')}-`;
  #nextId = 0;
  #runScheduled = false;
  /** Emissions in the current run; see #endRun. */
  #inRun = 0;
  #seenInRun = 0;
  #quietHops = 0;
  /** When the run's first emission was accepted (engine µs). */
  #runSinceUs = 0;
  /** performance.now() at the run's first hop; 0 before it. */
  #runStartMs = 0;
  /**
   * Where runs of emissions are dispatched: not in any emitter's context.
   * A microtask carries the context of the emission that queued it into
   * the handlers started from it, which `propagateContext: false` promises
   * they never see (with it on, each event brings its own). Taken again by
   * `initialize()` (`startDispatching`), where the threadsafe function that
   * brings workers' deliveries gets its context too.
   */
  #dispatchContext = new AsyncResource('BootifyEventsDispatch', NO_DESTROY);
  /** Upper bounds of the ring's depth and bytes; see #fullBecause. */
  #depthBound = 0;
  #bytesBound = 0;

  constructor(host: IntakeHost) {
    this.#h = host;
    this.#clock = new CoarseClock(() => host.native.elapsedUs());
    host.dispatch.acks.holdWhile(() => this.#runScheduled);
  }

  /** Runs from now on are dispatched in the caller's async context (that of `initialize()`). */
  startDispatching(): void {
    this.#dispatchContext = new AsyncResource('BootifyEventsDispatch', NO_DESTROY);
  }

  accept(type: string, payload: unknown, options: EventOptions | undefined): string | Promise<string> {
    const state = this.#h.state();
    if (state === 'draining' || state === 'stopped') {
      throw new BusError('SHUTTING_DOWN', `cannot emit '${String(type)}': the bus is shutting down`);
    }
    if (state === 'failed') {
      throw new BusError('WORKERS_UNAVAILABLE', 'no native worker could start and fallbackToSync is off');
    }
    checkType(type);
    const { lane, correlationId: given } = readEmitOptions(options);
    // On Redis the bound applies to the serialised bytes (#toGroup), not this estimate.
    const streams = this.#h.streams;
    let size = measure(payload, streams === undefined ? this.#h.config().maxEventSize : Number.MAX_SAFE_INTEGER, type.length + (given?.length ?? 0));
    const id = this.#idPrefix + (this.#nextId++).toString(36);
    const typeId = this.#h.registry.typeId(type);
    const timestamp = this.#clock.now();
    // Whatever happens to this emission, the run it joined ends (and the
    // clock reading with it); see #endRun.
    this.#inRun++;
    if (!this.#runScheduled) {
      this.#runScheduled = true;
      this.#runSinceUs = this.#clock.engineUs;
      // Later hops are queued from inside it and keep it.
      queueMicrotask(this.#endRunOutsideContext);
    }
    if (streams !== undefined && state !== 'inline') return this.#toGroup(streams, id, type, typeId, payload, lane, given, timestamp);
    const isolated = this.#h.registry.isIsolated(typeId);
    const journal = this.#h.journal;
    let serialised: Serialised | undefined;
    let encoded: Encoded | undefined;
    // Serialised once, here: isolates read these bytes in place (and the
    // journal keeps them), other types' payloads go to the journal alone;
    // maxEventSize is exact for both.
    if (isolated) {
      serialised = this.#h.workers.serialise({ id, type, payload, lane, correlationId: given ?? id, timestamp });
      size = serialised.bytes.length + 1;
    }
    if (journal !== undefined) {
      const overhead = type.length + (given?.length ?? 0);
      encoded =
        serialised !== undefined
          ? encodedEnvelope(serialised.bytes, serialised.tag === ENCODING.JSON, overhead)
          : encodePayload(payload, overhead, this.#h.config().maxEventSize, measuredFlat());
      if (!isolated) size = encoded.size;
    }
    const slot = this.#h.slots.add(id, type, typeId, payload, lane, given, timestamp);
    // Handlers (retries and replays included) run in the emitter's async
    // context, as the synchronous bus runs them: AsyncLocalStorage stores
    // such as a request id reach them. Isolates cannot share it.
    if (this.#h.config().propagateContext && !isolated) this.#h.slots.setContext(slot, new AsyncResource('BootifyEvent', NO_DESTROY));
    if (state === 'inline' && !isolated) return this.#h.dispatch.runInline(slot);
    let full = this.#fullBecause(size);
    if (full === undefined && journal !== undefined && !journal.fits(size)) full = 'journal.maxDiskMB';
    let arena = 0;
    if (serialised !== undefined && full === undefined) {
      arena = this.#h.workers.store(serialised);
      if (arena < 0) full = 'maxMemoryMB';
      else this.#h.slots.setArena(slot, arena, size);
    }
    if (full !== undefined || !this.#h.ring.push(lane, slot, typeId, size, this.#clock.engineUs, arena)) {
      return this.#overflow(slot, full ?? 'maxQueueSize', isolated);
    }
    if (isolated) this.#h.workers.ensureStarted();
    this.#h.observer.accepted();
    this.#h.books.opened(slot);
    // Resolves once the journal holds it (`durability`).
    if (journal !== undefined) return journal.stage(slot, lane, type, id, given, timestamp, encoded as Encoded);
    return id;
  }

  /**
   * A bus on Redis: the event is serialised into its envelope (maxEventSize
   * bounds the payload's bytes exactly, plus type and correlation id) and
   * goes to the group, to be handled by whichever process takes it.
   */
  #toGroup(streams: Streams, id: string, type: string, typeId: number, payload: unknown, lane: number, given: string | undefined, timestamp: number): Promise<string> {
    const { maxEventSize } = this.#h.config();
    const encoded = encodeWirePayload(payload, measuredFlat());
    const overhead = Buffer.byteLength(type) + (given === undefined ? 0 : Buffer.byteLength(given));
    const size = overhead + Buffer.byteLength(encoded.text);
    if (size > maxEventSize) {
      throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${maxEventSize} bytes): ${size} bytes serialised`, {
        field: 'maxEventSize',
        limit: maxEventSize,
        size,
      });
    }
    // Counted as accepted once Redis has it (Streams), or when it runs here.
    // Handled here instead when Redis cannot take it (fallbackToSync).
    const inline = (): Promise<string> => this.#h.dispatch.runInline(this.#h.slots.add(id, type, typeId, payload, lane, given, timestamp));
    return streams.stage(lane, type, id, envelope(id, type, given, timestamp, encoded), inline);
  }

  /**
   * A run of emissions ends once the producer has emitted nothing for
   * QUIET_HOPS microtask hops, after RUN_MAX emissions (at most the
   * window), or RUN_MS after its first hop, with the acknowledgements held
   * meanwhile: a producer that awaits every `emitEvent` emits once per hop
   * or a few, so ending the run at the first checkpoint would pay the
   * dispatch and the acknowledgement once per event instead of once per
   * run. A lone emission waits only those hops (well under a microsecond).
   */
  readonly #endRunOutsideContext = (): void => {
    this.#dispatchContext.runInAsyncScope(this.#endRun);
  };

  readonly #endRun = (): void => {
    // Acknowledgements held longer than RUN_MS go back now, run or not:
    // the engine times a delivery until its acknowledgement arrives.
    this.#h.dispatch.acks.flushHeld(RUN_MS);
    // No longer than the window (a longer run's tail could only wait), nor
    // than RUN_MS (its first event waits for its end).
    const most = Math.min(RUN_MAX, this.#h.config().concurrency);
    // Timed from its first hop: the emission that opened it may have been
    // slow (cold code), and the hop after it must still let the caller's
    // next emission join.
    const now = performance.now();
    if (this.#runStartMs === 0) this.#runStartMs = now;
    if (this.#inRun < most && now - this.#runStartMs < RUN_MS) {
      if (this.#inRun !== this.#seenInRun) {
        this.#seenInRun = this.#inRun;
        this.#quietHops = 0;
        // Emissions in later hops read the clock afresh: whatever the
        // caller does between two awaited emits must not age timestamps.
        this.#clock.invalidate();
        queueMicrotask(this.#endRun);
        return;
      }
      if (++this.#quietHops < QUIET_HOPS) {
        queueMicrotask(this.#endRun);
        return;
      }
    }
    this.#runScheduled = false;
    this.#inRun = this.#seenInRun = this.#quietHops = this.#runStartMs = 0;
    this.#clock.invalidate();
    // Taken before handlers run below: one that emits opens the next run.
    const since = this.#runSinceUs;
    // A run that ends after shutdown() began is still dispatched: shutdown
    // drains what was accepted.
    const state = this.#h.state();
    const dispatching = state === 'running' || state === 'draining';
    let drained = false;
    try {
      // What settled during the run goes first: it frees the places the
      // run is dispatched into (and, refilling, may dispatch it already).
      this.#h.dispatch.acks.flushHeld();
      if (!dispatching) return;
      // Once per run too: the native side samples the tails for the input rate.
      this.#h.ring.publishTails();
      // This thread dispatches the run itself when it can (see
      // `Dispatcher.dispatchEmitted`), else wakes a parked worker, which
      // then finds the whole run in the ring.
      drained = this.#h.dispatch.dispatchEmitted(since);
    } finally {
      if (dispatching && !drained && this.#h.ring.claimWake()) this.#h.native.wake();
    }
  };

  /**
   * Reading the ring's depth costs atomic loads, so it is re-read only when
   * the last reading plus what was pushed since could reach a limit.
   */
  #fullBecause(size: number): Limit | undefined {
    if (++this.#depthBound >= this.#h.config().maxQueueSize) {
      this.#depthBound = this.#h.ring.depth() + 1;
      if (this.#depthBound > this.#h.config().maxQueueSize) return 'maxQueueSize';
    }
    this.#bytesBound += size;
    if (this.#bytesBound > this.#h.config().maxMemoryMB * 1024 * 1024) {
      this.#bytesBound = this.#h.ring.bytesQueued() + size;
      if (this.#bytesBound > this.#h.config().maxMemoryMB * 1024 * 1024) return 'maxMemoryMB';
    }
    return undefined;
  }

  /**
   * The queue is full: handle inline (fallbackToSync) or refuse. Never
   * drop. Types handled in isolates cannot run inline: always refused.
   */
  #overflow(slot: number, limit: Limit, isolated = false): Promise<string> {
    this.#depthBound--;
    const config = this.#h.config();
    this.#logOverflow(limit, config.fallbackToSync && !isolated);
    if (!config.fallbackToSync || isolated) {
      const type = this.#h.slots.type(slot);
      this.#h.books.release(slot);
      const what = limit === 'journal.maxDiskMB' ? `the journal is full (${limit})` : `queue is full (${limit})`;
      throw new BusError('QUEUE_FULL', `${what}; event '${type}' was not accepted`, {
        field: limit,
        limit: limit === 'journal.maxDiskMB' ? config.journal.maxDiskMB : config[limit],
      });
    }
    if (limit === 'journal.maxDiskMB') this.#h.journal?.ranInline();
    return this.#h.dispatch.runInline(slot);
  }

  /**
   * Overflow is logged when it starts and then at most every
   * OVERFLOW_LOG_MS with the count since, never once per emission.
   */
  #logOverflow(limit: Limit, inline: boolean): void {
    const now = Date.now();
    this.#overflows++;
    if (now - this.#overflowLogged < OVERFLOW_LOG_MS) return;
    // Counted before the logger runs: it may emit on this bus, and overflow.
    const overflows = this.#overflows;
    this.#overflowLogged = now;
    this.#overflows = 0;
    this.#h.log.write('warn', 'events::queue', inline ? 'queue full; emissions run inline (fallbackToSync)' : 'queue full; emissions are refused with QUEUE_FULL', {
      limit,
      overflows,
    });
  }
}

// The JavaScript half of a bus on Redis (`backend.type: 'redis'`, see
// src/core/streams): emissions are packed per microtask and added to the
// group by the native link, each resolving once Redis has it; entries the
// link takes from the group go into slots (built only when first read)
// and into the ring, so they run here as emitted events do; the engine
// settles each in Redis when its books report it finished.
import type { AttemptError, BackendMetrics, DeadLetterEntry, EventPriority } from '../index';
import { BusError } from './errors';
import type { LazyEvents, RecoveredFields } from './event-record';
import type { BusParts } from './parts';
import { openEnvelope } from './wire-codec';

/** Per emission waiting for Redis. */
interface Waiting {
  id: string;
  resolve: (id: string) => void;
  reject: (err: BusError) => void;
  /** Runs it here instead (fallbackToSync), when Redis cannot take it. */
  inline: () => Promise<string>;
}

/** Per entry taken from the group, until its slot's event is built. */
interface Taken {
  type: string;
  envelope: Buffer | null;
  deliveries: number;
  /** The attempt it runs as: a retry's, plus one per process that died holding it. */
  attempt: number;
}

export interface StreamsHost extends BusParts {
  /** Hands the ring's new records to the engine (as a run of emissions does). */
  dispatchNew(): void;
}

export class Streams implements LazyEvents {
  readonly #h: StreamsHost;
  #connected: ((error: BusError | undefined) => void) | undefined;
  #lanes: number[] = [];
  #types: string[] = [];
  #lengths: number[] = [];
  #parts: Buffer[] = [];
  #staged: Waiting[] = [];
  #flushScheduled = false;
  readonly #batches = new Map<number, Waiting[]>();
  readonly #taken = new Map<number, Taken>();
  #nextTaken = 0;
  /** Holds the process open while emissions wait for Redis, or while this process reads. */
  #keepAlive: NodeJS.Timeout | undefined;
  #reading = false;
  #handlersQueued = false;
  /** Connected at least once, and not closed: emissions go out. */
  #open = false;
  #down: string | undefined;
  #facts = { version: '', evictionPolicy: '' };
  readonly #counts = { undecodable: 0, overDelivered: 0, inlineUnavailable: 0, inlineFull: 0, rejectedFull: 0, outages: 0 };

  constructor(host: StreamsHost) {
    this.#h = host;
  }

  /** Connects (at initialize()); rejects with BACKEND_UNAVAILABLE when Redis cannot be reached. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#connected = (error) => (error === undefined ? resolve() : reject(error));
      this.#hold();
      try {
        this.#h.native.startStreams(this.#onChange);
      } catch (err) {
        this.#connected = undefined;
        this.#release();
        reject(err);
      }
    });
  }

  /** Connected, and not closed: the group's dead letters are reachable. */
  get isOpen(): boolean {
    return this.#open;
  }

  get facts(): { version: string; evictionPolicy: string } {
    return this.#facts;
  }

  /** Whether Redis is unreachable now (and why). */
  get down(): string | undefined {
    return this.#down;
  }

  /** Queues an accepted event for the group; resolves with its id once Redis holds it. */
  stage(lane: number, type: string, id: string, text: string, inline: () => Promise<string>): Promise<string> {
    const part = Buffer.from(text, 'utf8');
    this.#lanes.push(lane);
    this.#types.push(type);
    this.#lengths.push(part.length);
    this.#parts.push(part);
    const promise = new Promise<string>((resolve, reject) => this.#staged.push({ id, resolve, reject, inline }));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.flush);
    }
    return promise;
  }

  readonly flush = (): void => {
    this.#flushScheduled = false;
    // Emissions before initialize() go once Redis is connected.
    if (this.#staged.length === 0 || !this.#open) return;
    const waiting = this.#staged;
    const lanes = Uint32Array.from(this.#lanes);
    const lengths = Uint32Array.from(this.#lengths);
    const types = this.#types;
    const envelopes = Buffer.concat(this.#parts);
    this.#staged = [];
    this.#lanes = [];
    this.#types = [];
    this.#lengths = [];
    this.#parts = [];
    let seq: number;
    try {
      seq = this.#h.native.streamsEmit(lanes, types, lengths, envelopes);
    } catch (err) {
      const why = new BusError('BACKEND_UNAVAILABLE', `the Redis link is closed: ${String((err as Error)?.message ?? err)}`);
      for (const w of waiting) w.reject(why);
      return;
    }
    this.#batches.set(seq, waiting);
    this.#hold();
  };

  /** The types with a handler here: the link reads their streams. */
  handlersChanged(): void {
    // Before initialize() there is no link (connecting sends them), after
    // shutdown none any more. Registrations in a row send once.
    if (!this.#open || this.#handlersQueued) return;
    this.#handlersQueued = true;
    queueMicrotask(this.#sendHandlers);
  }

  readonly #sendHandlers = (): void => {
    this.#handlersQueued = false;
    if (!this.#open) return;
    const types = this.#h.registry.types().filter((t) => this.#h.registry.has(t));
    this.#reading = types.length > 0;
    const handlers = this.#h.registry.all().map((h) => ({ id: h.id, type: h.type, key: h.key }));
    this.#h.native.streamsHandle(types, handlers);
    this.#keepAliveCheck();
  };

  readonly #onChange = (): void => {
    const c = this.#h.native.streamsTake();
    if (c.connected) {
      const done = this.#connected;
      this.#connected = undefined;
      if (c.connected.error != null) {
        done?.(new BusError('BACKEND_UNAVAILABLE', `Redis is unreachable at initialize(): ${c.connected.error}`, { field: 'backend.url' }));
      } else {
        this.#facts = { version: c.connected.version, evictionPolicy: c.connected.evictionPolicy };
        this.#open = true;
        done?.(undefined);
        this.handlersChanged();
        this.flush();
      }
    }
    for (let k = 0; k < c.emitErrors.length; k++) this.#emitted(c.emitted[2 * k], c.emitted[2 * k + 1], c.emitErrors[k]);
    // After close the link gave back what was still on its way here.
    if (c.envelopeLengths.length > 0 && this.#open) this.#adopt(c.entries, c.entryTypes, c.envelopes, c.envelopeLengths);
    for (const change of c.link) {
      if (change === '') {
        this.#down = undefined;
        this.#h.log.write('info', 'events::redis', 'Redis is reachable again');
      } else {
        this.#down = change;
        this.#counts.outages++;
        this.#h.log.write('error', 'events::redis', 'Redis is unreachable; retrying with backoff', { error: change });
      }
    }
    this.#keepAliveCheck();
  };

  #emitted(seq: number, accepted: number, error: string): void {
    const waiting = this.#batches.get(seq);
    if (waiting === undefined) return;
    this.#batches.delete(seq);
    const { fallbackToSync, maxQueueSize } = this.#h.config();
    waiting.forEach((w, k) => {
      if (k < accepted) {
        this.#h.observer.accepted();
        return w.resolve(w.id);
      }
      if (error === '') {
        // The group is full.
        if (fallbackToSync) {
          this.#counts.inlineFull++;
          return w.inline().then(w.resolve, w.reject);
        }
        this.#counts.rejectedFull++;
        return w.reject(new BusError('QUEUE_FULL', `the group's queue is full (maxQueueSize ${maxQueueSize}); the event was not accepted`, { field: 'maxQueueSize', limit: maxQueueSize }));
      }
      if (fallbackToSync) {
        this.#counts.inlineUnavailable++;
        return w.inline().then(w.resolve, w.reject);
      }
      w.reject(new BusError('BACKEND_UNAVAILABLE', `Redis did not take the event: ${error}`));
    });
  }

  /**
   * Entries taken from the group: into slots, bound to their entries, then
   * new events into the ring; retries (for one handler) and entries taken
   * over from dead processes to the engine as the attempt they are.
   */
  #adopt(numbers: Float64Array, types: string[], envelopes: Buffer, lengths: Uint32Array): void {
    const { slots, registry, ring, native, books } = this.#h;
    const count = lengths.length;
    const typeIds = types.map((t) => registry.typeId(t));
    const pairs = new Float64Array(count * 2);
    const records: number[] = [];
    const later: number[] = [];
    let at = 0;
    for (let k = 0; k < count; k++) {
      const n = 6 * k;
      const handle = numbers[n];
      const lane = numbers[n + 1];
      const deliveries = numbers[n + 2];
      const handler = numbers[n + 3];
      const type = types[numbers[n + 5]];
      const typeId = typeIds[numbers[n + 5]];
      const index = this.#nextTaken++;
      const length = lengths[k];
      // A view: the envelopes of a batch share one buffer.
      const envelope = length === 0xffffffff ? null : envelopes.subarray(at, (at += length));
      // Taken over from a dead process: each death counts as a delivery made.
      const attempt = numbers[n + 4] + deliveries - 1;
      this.#taken.set(index, { type, envelope, deliveries, attempt });
      const slot = slots.addLazy(this, index, typeId, lane);
      pairs[2 * k] = slot;
      pairs[2 * k + 1] = handle;
      books.opened(slot);
      const size = envelope?.length ?? 0;
      if (attempt > 0 || handler !== 0) later.push(slot, handle, typeId, lane, size, attempt, handler);
      else records.push(lane, slot, typeId, size, handle);
    }
    // Bound before anything can run, so a finish finds its entry.
    native.streamsBind(pairs);
    const now = native.elapsedUs();
    for (let r = 0; r < records.length; r += 5) {
      const lane = records[r];
      const slot = records[r + 1];
      const typeId = records[r + 2];
      const size = records[r + 3];
      // The ring holds maxQueueSize; the link takes at most the window.
      if (!ring.push(lane, slot, typeId, size, now, 0)) later.push(slot, records[r + 4], typeId, lane, size, 0, 0);
    }
    if (later.length > 0) native.streamsAdopt(Float64Array.from(later));
    this.#h.dispatchNew();
  }

  /** The event of entry `index` (LazyEvents): read from its envelope. */
  build(index: number): RecoveredFields {
    const t = this.#taken.get(index) as Taken;
    this.#taken.delete(index);
    const { retryAttempts } = this.#h.config();
    const base = { id: `redis-${index}`, type: t.type, payload: undefined, correlationId: undefined, timestamp: Date.now() };
    let event: RecoveredFields;
    try {
      if (t.envelope === null) throw new Error('the entry has no envelope');
      event = openEnvelope(t.envelope);
      if (event.type !== t.type) throw new Error(`the envelope's type '${event.type}' is not its stream's ('${t.type}')`);
    } catch (err) {
      this.#counts.undecodable++;
      return { ...base, failure: `the entry could not be read: ${(err as Error).message}`, failureName: 'StreamDecodeError' };
    }
    // Its holders died running it, each time: the handler may be what
    // kills them, so it is not run again.
    if (t.attempt > retryAttempts && t.deliveries > 1) {
      this.#counts.overDelivered++;
      return { ...event, failure: `delivered ${t.deliveries} times without finishing (the processes holding it stopped); retryAttempts is ${retryAttempts}`, failureName: 'RedeliveryLimitError' };
    }
    return event;
  }

  /**
   * The group's dead letters, oldest first, as last read from Redis (about
   * once a second, and after this process changed them). A letter whose
   * envelope cannot be read shows why in its payload-less event.
   */
  deadLetters(offset = 0, limit = Infinity): DeadLetterEntry[] {
    const prefix = `{bootify:${this.#h.config().backend.name}}:`;
    return this.#h.native
      .streamsLetters()
      .slice(offset, offset + limit)
      .map((l) => {
        const [priority, ...rest] = l.stream.slice(prefix.length).split(':');
        let event: DeadLetterEntry['event'];
        try {
          if (l.envelope == null) throw new Error('the letter has no envelope');
          const e = openEnvelope(l.envelope);
          event = { id: e.id, type: e.type, payload: e.payload, priority: priority as EventPriority, correlationId: e.correlationId ?? e.id, timestamp: e.timestamp };
        } catch (err) {
          event = { id: `redis-letter-${l.id}`, type: rest.join(':'), payload: undefined, priority: priority as EventPriority, correlationId: '', timestamp: 0 };
          void err;
        }
        const meta = letterMeta(l.meta);
        const last = meta.errors[meta.errors.length - 1];
        return {
          id: l.id,
          event,
          type: event.type,
          payload: event.payload,
          correlationId: event.correlationId,
          handler: meta.handler,
          handlerKey: meta.key,
          attempts: meta.attempts,
          lastError: { message: last?.message ?? '', name: last?.name ?? 'Error', stack: last?.stack ?? undefined },
          errors: meta.errors,
          timestamp: meta.timestamp,
        };
      });
  }

  /**
   * Replays the group's dead letter `id` (all of them without one); returns
   * how many. A letter names its handler's key: the event runs again for
   * that handler alone, with fresh attempts, as in-process. A letter
   * without one (written before keys, or of an undecodable entry) runs the
   * whole event again, so the event's other keyless letters go with it
   * rather than replay it twice.
   */
  replayLetters(id: number | undefined): number {
    const letters = this.deadLetters();
    const chosen = id === undefined ? letters : letters.filter((l) => l.id === id);
    let replayed = 0;
    for (const l of chosen) if (l.handlerKey && this.#h.native.streamsReplayLetter(l.id)) replayed++;
    const events = new Set(chosen.filter((l) => !l.handlerKey).map((l) => l.event.id));
    const done = new Set<string>();
    for (const l of letters) {
      if (l.handlerKey || !events.has(l.event.id)) continue;
      if (done.has(l.event.id) || (id !== undefined && l.id !== id)) this.#h.native.streamsRemoveLetters(l.id);
      else if (this.#h.native.streamsReplayLetter(l.id)) {
        done.add(l.event.id);
        replayed++;
      }
    }
    return replayed;
  }

  /** Removes the group's dead letter `id` (all of them without one); returns how many. */
  removeLetters(id: number | undefined): number {
    return this.#h.native.streamsRemoveLetters(id);
  }

  /** Events that will not run here (the bus shut down), with the attempt each has left: back to the group at once. */
  release(events: readonly { slot: number; attempt: number }[]): void {
    if (events.length === 0) return;
    const pairs = new Uint32Array(events.length * 2);
    events.forEach((e, k) => pairs.set([e.slot, e.attempt], 2 * k));
    this.#h.native.streamsRelease(pairs);
  }

  /** Takes nothing more from the group (shutdown began); sends what is staged. */
  stopReading(): void {
    this.flush();
    this.#reading = false;
    this.#h.native.streamsStopReading();
    this.#keepAliveCheck();
  }

  /** Settles what finished, closes the connections; what Redis never confirmed rejects with `why`. */
  close(why = new BusError('SHUTTING_DOWN', 'the bus was shut down before Redis confirmed the event')): void {
    this.flush();
    this.#open = false;
    this.#h.native.streamsClose();
    // The last batches' outcomes came in as the link closed.
    this.#onChange();
    for (const w of this.#staged) w.reject(why);
    this.#staged = [];
    // Whatever the link could not report is not coming.
    for (const waiting of this.#batches.values()) {
      for (const w of waiting) w.reject(why);
    }
    this.#batches.clear();
    this.#reading = false;
    this.#release();
  }

  metrics(): BackendMetrics {
    const s = this.#h.native.streamsState() as NativeStreamsState | null;
    const g = s?.group;
    return {
      type: 'redis',
      name: this.#h.config().backend.name,
      consumer: s?.consumer ?? '',
      connected: s !== null && !s.down && this.#down === undefined,
      serverVersion: this.#facts.version,
      evictionPolicy: this.#facts.evictionPolicy,
      group: {
        queued: { critical: g?.depth[0] ?? 0, normal: g?.depth[1] ?? 0, low: g?.depth[2] ?? 0 },
        pending: g?.pending ?? 0,
        consumers: g?.consumers ?? 0,
        unhandledTypes: (g?.unhandledTypes ?? []).map((u) => ({ ...u })),
        retrying: g?.retrying ?? 0,
        readAgoMs: g?.readAgoMs ?? -1,
      },
      deadLetters: s?.deadLetters ?? 0,
      held: s?.held ?? 0,
      emitted: s?.emitted ?? 0,
      taken: s?.taken ?? 0,
      reclaimed: s?.reclaimed ?? 0,
      settled: s?.settled ?? 0,
      retried: s?.retried ?? 0,
      promoted: s?.promoted ?? 0,
      retriesGone: s?.retriesGone ?? 0,
      unknownHandlers: s?.unknownHandlers ?? 0,
      renewed: s?.renewed ?? 0,
      lost: s?.lost ?? 0,
      errors: s?.errors ?? 0,
      outages: this.#counts.outages,
      undecodable: this.#counts.undecodable,
      overDelivered: this.#counts.overDelivered,
      inlineUnavailable: this.#counts.inlineUnavailable,
      inlineFull: this.#counts.inlineFull,
      rejectedFull: this.#counts.rejectedFull,
    };
  }

  #hold(): void {
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  #release(): void {
    if (this.#keepAlive !== undefined) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  /** A process that reads stays up (like a server); one that only emits, while Redis owes it answers. */
  #keepAliveCheck(): void {
    if (this.#reading || this.#batches.size > 0 || this.#connected !== undefined) this.#hold();
    else this.#release();
  }
}

/** `streamsState()` (src/binding/streams.rs): the link's counters under their public names. */
interface NativeStreamsState
  extends Pick<BackendMetrics, 'consumer' | 'deadLetters' | 'held' | 'emitted' | 'taken' | 'reclaimed' | 'settled' | 'renewed' | 'lost' | 'errors' | 'retried' | 'promoted' | 'retriesGone' | 'unknownHandlers'> {
  down: boolean;
  group: { depth: number[]; pending: number; consumers: number; unhandledTypes: { type: string; waiting: number }[]; readAgoMs: number; retrying: number };
}

/**
 * A dead letter's metadata, as `LETTER` writes it. Redis is outside the
 * process: a letter written by something else (or by a broken version)
 * shows what can be read, and never throws.
 */
function letterMeta(text: string): { handler: string; key: string | undefined; attempts: number; errors: AttemptError[]; timestamp: number } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const m = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const errors = (Array.isArray(m.errors) ? m.errors : []).map((e: unknown): AttemptError => {
    const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    return { message: str(o.message) ?? '', name: str(o.name) ?? 'Error', stack: str(o.stack) ?? null, timedOut: o.timedOut === true, at: num(o.at) };
  });
  return { handler: str(m.handler) ?? '', key: str(m.key), attempts: num(m.attempts), errors, timestamp: num(m.timestamp) };
}

// The JavaScript half of a durable bus: accepted events packed into one
// buffer per synchronous run and handed to the native journal, emissions
// resolved once their batch is durable, and recovery: what the journal
// gives back at initialize() is put back into slots and handed to the
// engine once its type has a handler (events wait for a handler, as they
// do in the ring).
import { deserialize, serialize } from 'node:v8';
import type { JournalMetrics, QueuedEvent } from '../index';
import { BusError, callNative, errorText } from './errors';
import type { RecoveredJournal } from './native';
import type { BusParts } from './parts';
import { isFlatPayload } from './payload';

/** The fields of each event in `RecoveredJournal.events` (src/binding/journal.rs). */
const F = { ID: 0, LANE: 1, ENCODING: 2, TYPE: 3, START: 4, ID_END: 5, CORRELATION_END: 6, END: 7, ATTEMPT: 8, DUE: 9, OPEN: 10, TIMESTAMP: 11 } as const;
const EVENT_FIELDS = 12;
/** See `PACKED_HEADER` in src/core/journal/mod.rs. */
const PACKED_HEADER = 24;
const JSON_ENCODING = 0;
const CLONE_ENCODING = 1;

/**
 * A payload as the journal keeps it: JSON when JSON carries it exactly (a
 * flat object: portable across Node versions), else V8's structured clone
 * (Dates, Maps, nested objects). `size` is exact: the encoded payload plus
 * the type and correlation id, what `maxEventSize` bounds.
 */
export interface Encoded {
  encoding: number;
  text: string | undefined;
  bytes: Uint8Array | undefined;
  size: number;
}

export function encodePayload(payload: unknown, overhead: number, maxEventSize: number): Encoded {
  const flat = isFlatPayload(payload);
  let text: string | undefined;
  let bytes: Uint8Array | undefined;
  try {
    if (flat) text = JSON.stringify(payload);
    else bytes = serialize(payload);
  } catch (err) {
    // A getter or proxy that throws on this second read, or a value only
    // JSON's estimate let through.
    throw new BusError('INVALID_PAYLOAD', `payload could not be serialised for the journal: ${errorText(err)}`, { field: 'payload' });
  }
  const size = overhead + (text !== undefined ? Buffer.byteLength(text) : (bytes as Uint8Array).length);
  if (size > maxEventSize) {
    throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${maxEventSize} bytes): ${size} bytes serialised`, {
      field: 'maxEventSize',
      limit: maxEventSize,
      size,
    });
  }
  return { encoding: flat ? JSON_ENCODING : CLONE_ENCODING, text, bytes, size };
}

interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: BusError) => void;
}

function batch(): Batch {
  let resolve!: () => void;
  let reject!: (err: BusError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejections reach callers through the promises derived from this one.
  promise.catch(() => {});
  return { promise, resolve, reject };
}


export class Journal {
  readonly #h: BusParts;
  readonly #fsync: boolean;
  #open = false;
  #staging = Buffer.allocUnsafe(1 << 16);
  #used = 0;
  /** The emissions staged since the last flush wait on this. */
  #batch: Batch | undefined;
  #flushScheduled = false;
  /** Flushed batches waiting for their sync (`'fsync'`), oldest first. */
  #unsynced: { seq: number; batch: Batch }[] = [];
  #keepAlive: NodeJS.Timeout | undefined;
  /** Disk bytes accepts may still take, as last read minus what was staged since. */
  #room = 0;
  #recovered: RecoveredJournal | undefined;
  /** Recovered events (indexes into `#recovered.events`) whose type has no handler yet, by type id. */
  readonly #waiting = new Map<number, number[]>();
  /** Slots of recovered events already in the slot table (those dead letters hold). */
  readonly #slotOf = new Map<number, number>();
  #counts = { recovered: 0, undecodable: 0, rejectedFull: 0, inlineFull: 0 };

  constructor(host: BusParts, fsync: boolean) {
    this.#h = host;
    this.#fsync = fsync;
  }

  /** Stages an accepted event; the emission resolves with `id` once it is durable. */
  stage(slot: number, lane: number, type: string, id: string, correlationId: string | undefined, timestamp: number, encoded: Encoded): Promise<string> {
    const corr = correlationId ?? '';
    // At most 3 bytes per UTF-16 unit; the exact lengths are patched in.
    const need = PACKED_HEADER + 3 * (type.length + id.length + corr.length) + encoded.size;
    if (this.#used + need > this.#staging.length) this.#grow(need);
    const buf = this.#staging;
    const head = this.#used;
    let at = head + PACKED_HEADER;
    const typeLen = buf.write(type, at, 'utf8');
    at += typeLen;
    const idLen = buf.write(id, at, 'utf8');
    at += idLen;
    const corrLen = corr.length === 0 ? 0 : buf.write(corr, at, 'utf8');
    at += corrLen;
    let payloadLen: number;
    if (encoded.text !== undefined) {
      payloadLen = buf.write(encoded.text, at, 'utf8');
    } else {
      buf.set(encoded.bytes as Uint8Array, at);
      payloadLen = (encoded.bytes as Uint8Array).length;
    }
    buf.writeUInt32LE(slot, head);
    buf[head + 4] = lane;
    buf[head + 5] = encoded.encoding;
    buf.writeUInt16LE(typeLen, head + 6);
    buf.writeDoubleLE(timestamp, head + 8);
    buf.writeUInt16LE(idLen, head + 16);
    buf.writeUInt16LE(corrLen, head + 18);
    buf.writeUInt32LE(payloadLen, head + 20);
    this.#used = at + payloadLen;
    const current = (this.#batch ??= batch());
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushSoon);
    }
    return current.promise.then(() => id);
  }

  /** Whether an event of `bytes` serialised bytes fits under `journal.maxDiskMB`. */
  fits(bytes: number): boolean {
    if (!this.#open) return true;
    this.#room -= bytes + 32;
    if (this.#room >= 0) return true;
    this.#room = this.#h.native.journalRoom() - this.#used - bytes - 32;
    if (this.#room >= 0) return true;
    this.#counts.rejectedFull++;
    return false;
  }

  /** An event that did not fit ran inline instead (fallbackToSync). */
  ranInline(): void {
    this.#counts.inlineFull++;
    this.#counts.rejectedFull--;
  }

  #grow(need: number): void {
    const grown = Buffer.allocUnsafe(Math.max(this.#staging.length * 2, this.#used + need));
    this.#staging.copy(grown, 0, 0, this.#used);
    this.#staging = grown;
  }

  readonly #flushSoon = (): void => {
    this.#flushScheduled = false;
    this.flush();
  };

  /** Hands what is staged to the native journal (written there with `'process'`). */
  flush(): void {
    if (!this.#open || this.#used === 0) return;
    const pending = this.#batch as Batch;
    const packed = this.#staging.subarray(0, this.#used);
    this.#used = 0;
    this.#batch = undefined;
    let seq: number;
    try {
      seq = callNative(() => this.#h.native.journalAccept(packed));
    } catch (err) {
      pending.reject(asJournalError(err));
      return;
    }
    if (!this.#fsync) {
      pending.resolve();
      return;
    }
    this.#unsynced.push({ seq, batch: pending });
    // Callers await these; the notification that resolves them is weak.
    this.#keepAlive ??= setInterval(() => {}, 0x7fffffff);
  }

  /** The writer synced (or failed): settles the batches it covers. */
  readonly #onChange = (): void => {
    const durable = this.#h.native.journalDurable();
    while (this.#unsynced.length > 0 && this.#unsynced[0].seq <= durable) {
      (this.#unsynced.shift() as { batch: Batch }).batch.resolve();
    }
    const failure = this.#h.native.journalFailure();
    if (failure != null) {
      for (const { batch: b } of this.#unsynced.splice(0)) b.reject(new BusError('JOURNAL_ERROR', failure));
    }
    if (this.#unsynced.length === 0 && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  };

  /**
   * Opens (and replays) the journal: dead letters come back at once,
   * unfinished events as soon as their type has a handler. Emissions
   * staged before this are written now.
   */
  open(): RecoveredJournal {
    const rec = callNative(() => this.#h.native.openJournal(this.#onChange));
    this.#recovered = rec;
    this.#open = true;
    this.#room = this.#h.native.journalRoom();
    const byId = new Map<number, number>();
    for (let i = 0; i * EVENT_FIELDS < rec.events.length; i++) {
      const f = i * EVENT_FIELDS;
      byId.set(rec.events[f + F.ID], i);
      if (rec.events[f + F.OPEN] !== 1) continue;
      const typeId = this.#h.registry.typeId(rec.types[rec.events[f + F.TYPE]]);
      let list = this.#waiting.get(typeId);
      if (list === undefined) this.#waiting.set(typeId, (list = []));
      list.push(i);
    }
    for (const letter of rec.letters) {
      const i = byId.get(letter.id);
      if (i === undefined) continue;
      const slot = this.#slotFor(i, false);
      if (slot === undefined) continue;
      const f = i * EVENT_FIELDS;
      // Its work has ended: the letter holds the slot, the books do not.
      this.#h.native.adoptLetter(slot, this.#h.slots.typeId(slot), rec.events[f + F.LANE], rec.events[f + F.END] - rec.events[f + F.CORRELATION_END], letter);
    }
    this.flush();
    const registry = this.#h.registry;
    this.#release([...this.#waiting.keys()].filter((t) => registry.has(registry.typeName(t))));
    return rec;
  }

  /** A type got its first handler: its recovered events go to the engine. */
  handlersChanged(typeId: number, count: number): void {
    if (count > 0 && this.#waiting.has(typeId)) this.#release([typeId]);
  }

  /** Hands the recovered events of these types to the engine, in the order they were accepted. */
  #release(typeIds: number[]): void {
    const rec = this.#recovered;
    if (rec === undefined || typeIds.length === 0) return;
    const order = typeIds.flatMap((t) => this.#waiting.get(t) ?? []).sort((a, b) => a - b);
    for (const t of typeIds) this.#waiting.delete(t);
    const flat: number[] = [];
    for (const i of order) {
      const slot = this.#slotFor(i, true);
      if (slot === undefined) continue;
      const f = i * EVENT_FIELDS;
      const e = rec.events;
      flat.push(slot, e[f + F.ID], this.#h.slots.typeId(slot), e[f + F.LANE], e[f + F.END] - e[f + F.CORRELATION_END], e[f + F.ATTEMPT], e[f + F.DUE]);
      this.#h.books.opened(slot);
    }
    this.#counts.recovered += flat.length / 7;
    if (flat.length > 0) this.#h.native.adoptRecovered(Float64Array.from(flat));
  }

  /**
   * The slot of recovered event `i`, decoding it into the slot table the
   * first time. One that cannot be decoded becomes a dead letter saying
   * why (`undefined`: nothing more to do with it).
   */
  #slotFor(i: number, open: boolean): number | undefined {
    const known = this.#slotOf.get(i);
    if (known !== undefined) return known;
    const rec = this.#recovered as RecoveredJournal;
    const f = i * EVENT_FIELDS;
    const e = rec.events;
    const type = rec.types[e[f + F.TYPE]];
    const typeId = this.#h.registry.typeId(type);
    const lane = e[f + F.LANE];
    const bytes = rec.bytes;
    const id = bytes.toString('utf8', e[f + F.START], e[f + F.ID_END]);
    const correlationId = e[f + F.CORRELATION_END] > e[f + F.ID_END] ? bytes.toString('utf8', e[f + F.ID_END], e[f + F.CORRELATION_END]) : undefined;
    const timestamp = e[f + F.TIMESTAMP];
    const decoded = decode(bytes.subarray(e[f + F.CORRELATION_END], e[f + F.END]), e[f + F.ENCODING]);
    if (decoded.failure !== undefined) {
      const slot = this.#h.slots.add(id, type, typeId, undefined, lane, correlationId, timestamp);
      this.#h.books.opened(slot);
      this.#h.native.adoptUndecodable(slot, e[f + F.ID], typeId, lane, `recovered event's payload could not be decoded: ${decoded.failure}`);
      this.#counts.undecodable++;
      this.#slotOf.set(i, slot);
      return open ? undefined : slot;
    }
    const slot = this.#h.slots.add(id, type, typeId, decoded.payload, lane, correlationId, timestamp);
    this.#slotOf.set(i, slot);
    return slot;
  }

  /** Recovered events still waiting for a handler: not finished, and in the journal still. */
  waitingEvents(): QueuedEvent[] {
    const out: QueuedEvent[] = [];
    for (const list of this.#waiting.values()) {
      for (const i of list) {
        const slot = this.#slotFor(i, false);
        if (slot === undefined) continue;
        out.push(this.#h.slots.queuedEvent(slot));
      }
    }
    return out;
  }

  /** Writes and syncs everything, settles what waited, and releases the directory. */
  close(): void {
    if (!this.#open) {
      this.#batch?.reject(new BusError('SHUTTING_DOWN', 'the bus was shut down before initialize() opened its journal'));
      return;
    }
    this.flush();
    try {
      callNative(() => this.#h.native.closeJournal());
    } finally {
      this.#open = false;
      this.#onChange();
    }
  }

  metrics(native: NativeJournalStats | null | undefined): JournalMetrics {
    const rec = this.#recovered;
    let waiting = 0;
    for (const list of this.#waiting.values()) waiting += list.length;
    return {
      durability: this.#fsync ? 'fsync' : 'process',
      dir: this.#h.config().journal.dir,
      diskBytes: native?.diskBytes ?? 0,
      maxDiskBytes: native?.maxDiskBytes ?? this.#h.config().journal.maxDiskMB * 1024 * 1024,
      segments: native?.segments ?? 0,
      recordsWritten: native?.recordsWritten ?? 0,
      bytesWritten: native?.bytesWritten ?? 0,
      fsyncs: native?.fsyncs ?? { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 },
      copiedForward: native?.copiedForward ?? 0,
      segmentsDeleted: native?.segmentsDeleted ?? 0,
      recovered: this.#counts.recovered,
      recoveredWaiting: waiting,
      undecodable: this.#counts.undecodable,
      truncated: rec?.truncated ?? 0,
      truncatedBytes: rec?.truncatedBytes ?? 0,
      corruptions: (rec?.corruptions ?? []).map((c) => ({ ...c })),
      rejectedFull: this.#counts.rejectedFull,
      inlineFull: this.#counts.inlineFull,
      failure: native?.failure ?? null,
    };
  }
}

/** The journal's part of the native stats JSON (src/binding/stats.rs). */
export interface NativeJournalStats {
  diskBytes: number;
  maxDiskBytes: number;
  /** Disk bytes accepted events may still take. */
  room: number;
  segments: number;
  recordsWritten: number;
  bytesWritten: number;
  fsyncs: JournalMetrics['fsyncs'];
  copiedForward: number;
  segmentsDeleted: number;
  failure: string | null;
}

function asJournalError(err: unknown): BusError {
  if (err instanceof BusError && err.code === 'JOURNAL_ERROR') return err;
  return new BusError('JOURNAL_ERROR', `the journal could not take the event: ${errorText(err)}`);
}

/** A payload from the journal, or why it cannot be read. */
function decode(bytes: Buffer, encoding: number): { payload?: unknown; failure?: string } {
  try {
    if (encoding === JSON_ENCODING) return { payload: JSON.parse(bytes.toString('utf8')) };
    if (encoding === CLONE_ENCODING) return { payload: deserialize(bytes) };
    return { failure: `unknown encoding ${encoding}` };
  } catch (err) {
    return { failure: errorText(err) };
  }
}

// The JavaScript half of a durable bus: accepted events packed into one
// buffer per synchronous run and handed to the native journal, emissions
// resolved once their batch is durable, and recovery: what the journal
// gives back at initialize() is put back into slots and handed to the
// engine once its type has a handler (events wait for a handler, as they
// do in the ring).
import type { JournalMetrics, QueuedEvent } from '../index';
import { BusError, callNative, errorText } from './errors';
import type { RecoveredJournal } from './native';
import type { LazyEvents, RecoveredFields } from './event-record';
import type { BusParts } from './parts';
import { decode, type Encoded } from './journal-codec';

/** Per recovered event, `RecoveredJournal.numbers` and `.fields` (src/binding/journal.rs). */
const N = { ID: 0, DUE: 1, TIMESTAMP: 2 } as const;
const NUMBERS = 3;
const U = { FLAGS: 0, TYPE: 1, BUFFER: 2, START: 3, ID_END: 4, CORRELATION_START: 5, CORRELATION_END: 6, PAYLOAD_START: 7, END: 8, ATTEMPT: 9 } as const;
const FIELDS = 10;
const lane = (flags: number): number => flags & 3;
const encoding = (flags: number): number => (flags >> 2) & 3;
const isOpen = (flags: number): boolean => (flags & 16) !== 0;

/** See `PACKED_HEADER` in src/core/journal/mod.rs. */
const PACKED_HEADER = 32;
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


export class Journal implements LazyEvents {
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
  /** Per recovered event, its slot once it has one (-1: none yet). */
  #slotOf = new Int32Array(0);
  /** Per recovered type index, the registry's type id. */
  #typeIds: number[] = [];
  #counts = { recovered: 0, undecodable: 0, rejectedFull: 0, inlineFull: 0, truncated: 0, truncatedBytes: 0 };
  #corruptions: JournalMetrics['corruptions'] = [];
  /** Recovered events in slots, not yet built: the segments read stay until none is left. */
  #unbuilt = 0;
  /** `open` is putting recovered events into slots: nothing lets go of them. */
  #opening = false;

  constructor(host: BusParts, fsync: boolean) {
    this.#h = host;
    this.#fsync = fsync;
  }

  /** Stages an accepted event; the emission resolves with `id` once it is durable. */
  stage(slot: number, lane: number, type: string, id: string, correlationId: string | undefined, timestamp: number, encoded: Encoded): Promise<string> {
    const corr = correlationId ?? '';
    // At most 3 bytes per UTF-16 unit; the exact lengths are patched in.
    const text = encoded.text;
    const payloadRoom = text !== undefined ? 3 * text.length : (encoded.bytes as Uint8Array).length;
    const need = PACKED_HEADER + 3 * (type.length + id.length + corr.length) + payloadRoom;
    if (this.#used + need > this.#staging.length) this.#grow(need);
    const buf = this.#staging;
    const head = this.#used;
    let at = head + PACKED_HEADER;
    const typeLen = writeText(buf, at, type);
    at += typeLen;
    const idLen = writeText(buf, at, id);
    at += idLen;
    const corrLen = corr.length === 0 ? 0 : writeText(buf, at, corr);
    at += corrLen;
    let payloadLen: number;
    if (text !== undefined) {
      payloadLen = writeText(buf, at, text);
    } else {
      buf.set(encoded.bytes as Uint8Array, at);
      payloadLen = (encoded.bytes as Uint8Array).length;
    }
    buf.writeUInt32LE(slot, head);
    buf[head + 4] = lane;
    buf[head + 5] = encoded.encoding;
    buf.writeUInt16LE(0, head + 6);
    buf.writeDoubleLE(timestamp, head + 8);
    buf.writeUInt32LE(typeLen, head + 16);
    buf.writeUInt32LE(idLen, head + 20);
    buf.writeUInt32LE(corrLen, head + 24);
    buf.writeUInt32LE(payloadLen, head + 28);
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
    this.#opening = true;
    try {
      this.#adopt(rec);
    } finally {
      this.#opening = false;
    }
    this.#letGo();
    return rec;
  }

  #adopt(rec: RecoveredJournal): void {
    this.#recovered = rec;
    this.#counts.truncated = rec.truncated;
    this.#counts.truncatedBytes = rec.truncatedBytes;
    this.#corruptions = rec.corruptions.map((c) => ({ ...c }));
    this.#open = true;
    this.#room = this.#h.native.journalRoom();
    const count = rec.numbers.length / NUMBERS;
    this.#slotOf = new Int32Array(count).fill(-1);
    this.#typeIds = rec.types.map((t) => this.#h.registry.typeId(t));
    const wanted = new Set(rec.letters.map((l) => l.id));
    const byId = new Map<number, number>();
    const { numbers, fields } = rec;
    for (let i = 0; i < count; i++) {
      const f = i * FIELDS;
      if (wanted.size > 0 && wanted.has(numbers[i * NUMBERS + N.ID])) byId.set(numbers[i * NUMBERS + N.ID], i);
      if (!isOpen(fields[f + U.FLAGS])) continue;
      const typeId = this.#typeIds[fields[f + U.TYPE]];
      let list = this.#waiting.get(typeId);
      if (list === undefined) this.#waiting.set(typeId, (list = []));
      list.push(i);
    }
    for (const letter of rec.letters) {
      const i = byId.get(letter.id);
      if (i === undefined) continue;
      const slot = this.#slotFor(i);
      const f = i * FIELDS;
      // Its work has ended: the letter holds the slot, the books do not.
      this.#h.native.adoptLetter(slot, this.#h.slots.typeId(slot), lane(fields[f + U.FLAGS]), fields[f + U.END] - fields[f + U.PAYLOAD_START], letter);
      this.#h.slots.queuedEvent(slot);
    }
    this.flush();
    const registry = this.#h.registry;
    this.#release([...this.#waiting.keys()].filter((t) => registry.has(registry.typeName(t))));
  }

  /** A type got its first handler: its recovered events go to the engine. */
  handlersChanged(typeId: number, count: number): void {
    if (count > 0 && this.#waiting.has(typeId)) this.#release([typeId]);
  }

  /** Hands the recovered events of these types to the engine, in the order they were accepted. */
  #release(typeIds: number[]): void {
    const rec = this.#recovered;
    if (rec === undefined || typeIds.length === 0) return;
    // Each list is in acceptance order already; several are merged by a
    // numeric typed-array sort (no comparator calls).
    const lists = typeIds.map((t) => this.#waiting.get(t) ?? []);
    const order = lists.length === 1 ? lists[0] : Uint32Array.from(lists.flat()).sort();
    for (const t of typeIds) this.#waiting.delete(t);
    const flat = new Float64Array(order.length * 7);
    const { numbers, fields } = rec;
    let at = 0;
    for (const i of order) {
      const slot = this.#slotFor(i);
      const f = i * FIELDS;
      flat[at++] = slot;
      flat[at++] = numbers[i * NUMBERS + N.ID];
      flat[at++] = this.#h.slots.typeId(slot);
      flat[at++] = lane(fields[f + U.FLAGS]);
      flat[at++] = fields[f + U.END] - fields[f + U.PAYLOAD_START];
      flat[at++] = fields[f + U.ATTEMPT];
      flat[at++] = numbers[i * NUMBERS + N.DUE];
      this.#h.books.opened(slot);
    }
    this.#counts.recovered += order.length;
    if (order.length > 0) this.#h.native.adoptRecovered(flat);
    this.#letGo();
  }

  /** The slot of recovered event `i`; it is built only when first read (`build`). */
  #slotFor(i: number): number {
    const known = this.#slotOf[i];
    if (known >= 0) return known;
    const rec = this.#recovered as RecoveredJournal;
    const f = i * FIELDS;
    const typeId = this.#typeIds[rec.fields[f + U.TYPE]];
    const slot = this.#h.slots.addLazy(this, i, typeId, lane(rec.fields[f + U.FLAGS]));
    this.#slotOf[i] = slot;
    this.#unbuilt++;
    return slot;
  }

  /** Recovered event `i`, decoded (LazyEvents). */
  build(i: number): RecoveredFields {
    const rec = this.#recovered as RecoveredJournal;
    const f = i * FIELDS;
    const e = rec.fields;
    const bytes = rec.buffers[e[f + U.BUFFER]];
    const corrStart = e[f + U.CORRELATION_START];
    const corrEnd = e[f + U.CORRELATION_END];
    const decoded = decode(bytes.subarray(e[f + U.PAYLOAD_START], e[f + U.END]), encoding(e[f + U.FLAGS]));
    if (decoded.failure !== undefined) this.#counts.undecodable++;
    const fields = {
      id: bytes.toString('utf8', e[f + U.START], e[f + U.ID_END]),
      type: rec.types[e[f + U.TYPE]],
      payload: decoded.payload,
      correlationId: corrEnd > corrStart ? bytes.toString('utf8', corrStart, corrEnd) : undefined,
      timestamp: rec.numbers[i * NUMBERS + N.TIMESTAMP],
      failure: decoded.failure,
    };
    this.#unbuilt--;
    this.#letGo();
    return fields;
  }

  /** Once every recovered event is built, the segments read at recovery can go. */
  #letGo(): void {
    if (this.#unbuilt === 0 && this.#waiting.size === 0 && !this.#opening) this.#recovered = undefined;
  }

  /** Recovered events still waiting for a handler: not finished, and in the journal still. */
  waitingEvents(): QueuedEvent[] {
    const out: QueuedEvent[] = [];
    for (const list of this.#waiting.values()) {
      for (const i of list) out.push(this.#h.slots.queuedEvent(this.#slotFor(i)));
    }
    return out;
  }

  /**
   * Writes and syncs everything, settles what waited, and releases the
   * directory. Returns the error if the journal could not be closed
   * cleanly (a failed write: what it holds may be short of what the
   * shutdown report lists).
   */
  close(): BusError | undefined {
    if (!this.#open) {
      this.#batch?.reject(new BusError('SHUTTING_DOWN', 'the bus was shut down before initialize() opened its journal'));
      return undefined;
    }
    this.flush();
    try {
      callNative(() => this.#h.native.closeJournal());
      return undefined;
    } catch (err) {
      return asJournalError(err);
    } finally {
      this.#open = false;
      this.#onChange();
    }
  }

  metrics(native: NativeJournalStats | null | undefined): JournalMetrics {
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
      truncated: this.#counts.truncated,
      truncatedBytes: this.#counts.truncatedBytes,
      corruptions: this.#corruptions.map((c) => ({ ...c })),
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

/**
 * Writes `text` as UTF-8 at `at`; returns the bytes written. Short ASCII
 * strings (ids, types, small JSON payloads) are copied here: four native
 * calls per event cost more than the loop.
 */
function writeText(buf: Buffer, at: number, text: string): number {
  const n = text.length;
  if (n > 96) return buf.write(text, at, 'utf8');
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) return buf.write(text, at, 'utf8');
    buf[at + i] = c;
  }
  return n;
}

function asJournalError(err: unknown): BusError {
  if (err instanceof BusError && err.code === 'JOURNAL_ERROR') return err;
  return new BusError('JOURNAL_ERROR', `the journal could not take the event: ${errorText(err)}`);
}

// How an event travels through Redis: one JSON envelope per entry. The
// processes of a group may run different versions of Node and of this
// package (a rolling deploy), so the format is JSON (V8's structured clone
// is not portable across Node versions) and versioned; what JSON cannot
// carry (Dates, Maps, Sets, BigInts, bytes, undefined, NaN, ±Infinity) is
// written as a tagged object and revived on the way back.
import { BusError, errorText } from './errors';

/** The envelope version this package writes and reads. */
export const WIRE_VERSION = 1;
const TAG = '$bootify';

/** What comes back out of an envelope. */
export interface WireEvent {
  id: string;
  type: string;
  payload: unknown;
  correlationId: string | undefined;
  timestamp: number;
}

function tagged(kind: string, v?: unknown): Record<string, unknown> {
  return v === undefined ? { [TAG]: kind } : { [TAG]: kind, v };
}

// `this[key]` is the value before toJSON (a Date's own, not its string).
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Date) return tagged('Date', Number.isNaN(raw.getTime()) ? null : raw.toISOString());
  switch (typeof raw) {
    case 'undefined':
      // At the top, or in an array: JSON would drop it or write null.
      return tagged('undefined');
    case 'bigint':
      return tagged('BigInt', raw.toString());
    case 'number':
      if (Number.isFinite(raw)) return raw;
      return tagged('Number', String(raw));
    case 'function':
    case 'symbol':
      throw new TypeError(`a ${typeof raw} cannot be sent to other processes (at '${key}')`);
  }
  if (raw instanceof Map) return tagged('Map', [...raw.entries()]);
  if (raw instanceof Set) return tagged('Set', [...raw.values()]);
  if (raw instanceof RegExp) return tagged('RegExp', [raw.source, raw.flags]);
  if (ArrayBuffer.isView(raw)) {
    const kind = Buffer.isBuffer(raw) ? 'Buffer' : raw.constructor.name;
    return tagged('Bytes', [kind, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')]);
  }
  if (raw instanceof ArrayBuffer) return tagged('Bytes', ['ArrayBuffer', Buffer.from(raw).toString('base64')]);
  if (raw instanceof Error) return tagged('Error', { name: raw.name, message: raw.message, stack: raw.stack });
  // An object of the user's that has our tag as a key is wrapped, so it
  // comes back as it was rather than revived.
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, TAG)) {
    return tagged('Object', Object.entries(value as Record<string, unknown>));
  }
  return value;
}

// A reviver that returns undefined deletes the value (a hole in an array):
// undefined comes back as this, and its parent, revived next, puts it in.
const UNDEFINED = Object.freeze({});

function reviver(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (value[i] === UNDEFINED) value[i] = undefined;
    return value;
  }
  const o = value as Record<string, unknown>;
  const kind = o[TAG];
  if (typeof kind !== 'string') {
    for (const k of Object.keys(o)) if (o[k] === UNDEFINED) o[k] = undefined;
    return value;
  }
  const v = o.v;
  switch (kind) {
    case 'Date':
      return new Date(typeof v === 'string' ? v : NaN);
    case 'undefined':
      return UNDEFINED;
    case 'BigInt':
      return BigInt(String(v));
    case 'Number':
      return Number(v);
    case 'Map':
      return new Map(Array.isArray(v) ? (v as [unknown, unknown][]) : []);
    case 'Set':
      return new Set(Array.isArray(v) ? v : []);
    case 'RegExp':
      return Array.isArray(v) ? new RegExp(String(v[0]), String(v[1])) : new RegExp('');
    case 'Bytes':
      return bytes(v);
    case 'Error': {
      const e = (v ?? {}) as { name?: unknown; message?: unknown; stack?: unknown };
      return Object.assign(new Error(String(e.message ?? '')), { name: String(e.name ?? 'Error'), stack: String(e.stack ?? '') });
    }
    case 'Object':
      return Object.fromEntries(Array.isArray(v) ? (v as [string, unknown][]) : []);
    default:
      throw new TypeError(`unknown tag '${kind}' (written by a newer version of this package?)`);
  }
}

const VIEWS: Record<string, new (buffer: ArrayBuffer) => ArrayBufferView> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
};

/** `[kind, base64]` back into the view (or buffer) it was, copied into an aligned buffer. */
function bytes(v: unknown): unknown {
  const [kind, data] = Array.isArray(v) ? v : ['Uint8Array', v];
  const raw = Buffer.from(String(data), 'base64');
  if (kind === 'Buffer') return raw;
  const copy = new ArrayBuffer(raw.length);
  new Uint8Array(copy).set(raw);
  if (kind === 'ArrayBuffer') return copy;
  const View = VIEWS[String(kind)] ?? Uint8Array;
  return new View(copy);
}

/**
 * The payload as wire JSON: plain JSON when `flat` (a flat object carries
 * exactly), tagged JSON otherwise. A payload JSON cannot walk (a cycle, a
 * getter that throws) is an INVALID_PAYLOAD.
 */
export function encodeWirePayload(payload: unknown, flat: boolean): { text: string; tagged: boolean } {
  try {
    // A flat payload's NaN or Infinity would come back as null.
    if (flat && Object.values(payload as object).every((v) => typeof v !== 'number' || Number.isFinite(v))) {
      return { text: JSON.stringify(payload), tagged: false };
    }
    return { text: JSON.stringify(payload, replacer), tagged: true };
  } catch (err) {
    throw new BusError('INVALID_PAYLOAD', `payload could not be serialised for Redis: ${errorText(err)}`, { field: 'payload' });
  }
}

/** The envelope around an encoded payload (one string: cheap to build). */
export function envelope(id: string, type: string, correlationId: string | undefined, timestamp: number, payload: { text: string; tagged: boolean }): string {
  const corr = correlationId === undefined ? 'null' : JSON.stringify(correlationId);
  return `{"v":${WIRE_VERSION},"t":${payload.tagged ? 1 : 0},"id":${JSON.stringify(id)},"type":${JSON.stringify(type)},"c":${corr},"ts":${timestamp},"p":${payload.text}}`;
}

/**
 * Reads an envelope from Redis (untrusted: another version, another
 * program). Throws a message saying what is wrong with it.
 */
export function openEnvelope(bytes: Buffer): WireEvent {
  const text = bytes.toString('utf8');
  let o: unknown;
  try {
    o = JSON.parse(text);
    // Tagged payloads say so (`t: 1`): only they pay for the reviver.
    if (o !== null && typeof o === 'object' && (o as { t?: unknown }).t === 1) o = JSON.parse(text, reviver);
  } catch (err) {
    throw new Error(`the entry is not a readable envelope: ${errorText(err)}`);
  }
  if (o === null || typeof o !== 'object') throw new Error('the entry is not an envelope object');
  const e = o as Record<string, unknown>;
  if (e.v !== WIRE_VERSION) throw new Error(`envelope version ${String(e.v)} is not one this package reads (${WIRE_VERSION})`);
  if (typeof e.id !== 'string' || typeof e.type !== 'string') throw new Error('the envelope has no id or type');
  const ts = typeof e.ts === 'number' && Number.isFinite(e.ts) ? e.ts : Date.now();
  return { id: e.id, type: e.type, payload: e.p === UNDEFINED ? undefined : e.p, correlationId: typeof e.c === 'string' ? e.c : undefined, timestamp: ts };
}

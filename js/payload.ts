import { BusError } from './errors';

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Estimates the JSON size of `payload` in bytes (one byte per string
 * character) without serialising it, and refuses what could not be
 * serialised: `undefined` at the top, functions, symbols, BigInts and
 * cycles. Starts from `overhead` (the type and correlation id), stops as
 * soon as the estimate passes `limit` and throws `EVENT_TOO_LARGE`. The
 * payload itself is never copied or changed.
 */
export function measurePayload(payload: unknown, limit: number, overhead = 0): number {
  if (payload === undefined) {
    throw new BusError('INVALID_PAYLOAD', 'payload is undefined; pass null or an object', { field: 'payload' });
  }
  const flat = measureFlat(payload, overhead);
  lastWasFlat = flat >= 0;
  if (flat >= 0 && flat <= limit) return flat;
  ancestors.length = 0;
  return visit(payload, overhead, limit, 'payload');
}

/** Whether the payload is a plain object of strings, numbers and booleans only (JSON carries it exactly). */
export function isFlatPayload(payload: unknown): boolean {
  return measureFlat(payload, 0) >= 0;
}

let lastWasFlat = false;

/** isFlatPayload of the payload measurePayload last measured (saves walking it twice). */
export function measuredFlat(): boolean {
  return lastWasFlat;
}

/**
 * The common case: a non-array object whose own fields are all strings,
 * numbers or booleans. Returns -1 for anything else, which then takes the
 * general (and error-reporting) path.
 */
function measureFlat(payload: unknown, overhead: number): number {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || payload instanceof Date) return -1;
  let size = overhead + 2;
  for (const key in payload) {
    if (!hasOwn.call(payload, key)) continue;
    const value: unknown = (payload as Record<string, unknown>)[key];
    switch (typeof value) {
      case 'string':
        size += key.length + 6 + value.length;
        break;
      case 'number':
        size += key.length + 12;
        break;
      case 'boolean':
        size += key.length + 9;
        break;
      default:
        return -1;
    }
  }
  return size;
}

/** Objects on the path from the root to the value being measured. */
const ancestors: object[] = [];

/**
 * Returns `size` plus the size of `value`. `path` is a string or, to keep
 * the common case free of string building, a function producing it.
 */
function visit(value: unknown, size: number, limit: number, path: string | (() => string)): number {
  switch (typeof value) {
    case 'string':
      return grow(size, value.length + 2, limit);
    case 'number':
      return grow(size, 8, limit);
    case 'boolean':
      return grow(size, 5, limit);
    case 'undefined':
      // Dropped by JSON inside objects; nothing to count.
      return size;
    case 'object':
      return value === null ? grow(size, 4, limit) : visitObject(value, size, limit, path);
    default: {
      const field = pathOf(path);
      throw new BusError('INVALID_PAYLOAD', `${field} is a ${typeof value}, which cannot be part of an event payload`, {
        field,
        type: typeof value,
      });
    }
  }
}

function visitObject(value: object, size: number, limit: number, path: string | (() => string)): number {
  if (value instanceof Date) return grow(size, 26, limit);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return grow(size, value.byteLength, limit);
  if (ancestors.includes(value)) {
    const field = pathOf(path);
    throw new BusError('INVALID_PAYLOAD', `${field} refers back to one of its parents (a cycle)`, { field });
  }
  ancestors.push(value);
  size = grow(size, 2, limit);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      size = visit(item, grow(size, 1, limit), limit, isPlain(item) ? path : () => `${pathOf(path)}[${i}]`);
    }
  } else {
    // for-in with an own-property check: JSON's keys, without allocating
    // the array Object.keys would.
    for (const key in value) {
      if (!hasOwn.call(value, key)) continue;
      const child: unknown = (value as Record<string, unknown>)[key];
      size = visit(child, grow(size, key.length + 4, limit), limit, isPlain(child) ? path : () => `${pathOf(path)}.${key}`);
    }
  }
  ancestors.pop();
  return size;
}

/** Values that can never fail with a path, so no path needs building. */
function isPlain(value: unknown): boolean {
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' || t === 'undefined';
}

function grow(size: number, by: number, limit: number): number {
  const next = size + by;
  if (next > limit) {
    throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${limit} bytes): at least ${next} bytes`, {
      field: 'maxEventSize',
      limit,
      size: next,
    });
  }
  return next;
}

function pathOf(path: string | (() => string)): string {
  return typeof path === 'string' ? path : path();
}

// How a durable bus writes payloads into its journal and reads them back.
import { deserialize, serialize } from 'node:v8';
import { BusError, errorText } from './errors';
import { isFlatPayload } from './payload';

export const JSON_ENCODING = 0;
export const CLONE_ENCODING = 1;
/**
 * The whole event as isolates read it (`{ id, type, payload, ... }`, JSON
 * or structured clone): an isolate-handled type's event is serialised once,
 * for the arena, and the journal keeps those bytes.
 */
export const ENVELOPE_JSON_ENCODING = 2;
export const ENVELOPE_CLONE_ENCODING = 3;

/** An isolate event's serialised envelope (`Serialised`, tag JSON or not), as the journal keeps it. */
export function encodedEnvelope(bytes: Uint8Array, json: boolean, overhead: number): Encoded {
  return { encoding: json ? ENVELOPE_JSON_ENCODING : ENVELOPE_CLONE_ENCODING, text: undefined, bytes, size: overhead + bytes.length };
}

/**
 * A payload as the journal keeps it: JSON when JSON carries it exactly (a
 * flat object: portable across Node versions), else V8's structured clone
 * (Dates, Maps, nested objects). `size` is the encoded payload plus the
 * type and correlation id, what `maxEventSize` bounds exactly (JSON text
 * that cannot reach the bound is counted in UTF-16 units).
 */
export interface Encoded {
  encoding: number;
  text: string | undefined;
  bytes: Uint8Array | undefined;
  size: number;
}

export function encodePayload(payload: unknown, overhead: number, maxEventSize: number, flat = isFlatPayload(payload)): Encoded {
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
  // A UTF-16 unit takes at most 3 UTF-8 bytes: only text that might not
  // fit is measured exactly.
  const fits = text !== undefined && overhead + 3 * text.length <= maxEventSize;
  const size = overhead + (text === undefined ? (bytes as Uint8Array).length : fits ? text.length : Buffer.byteLength(text));
  if (size > maxEventSize) {
    throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${maxEventSize} bytes): ${size} bytes serialised`, {
      field: 'maxEventSize',
      limit: maxEventSize,
      size,
    });
  }
  return { encoding: flat ? JSON_ENCODING : CLONE_ENCODING, text, bytes, size };
}

/** A payload from the journal, or why it cannot be read. */
export function decode(bytes: Buffer, encoding: number): { payload?: unknown; failure?: string } {
  try {
    if (encoding === JSON_ENCODING) return { payload: JSON.parse(bytes.toString('utf8')) };
    if (encoding === CLONE_ENCODING) return { payload: deserialize(bytes) };
    if (encoding === ENVELOPE_JSON_ENCODING || encoding === ENVELOPE_CLONE_ENCODING) {
      const envelope: unknown = encoding === ENVELOPE_JSON_ENCODING ? JSON.parse(bytes.toString('utf8')) : deserialize(bytes);
      if (envelope === null || typeof envelope !== 'object') return { failure: 'not an event envelope' };
      return { payload: (envelope as { payload?: unknown }).payload };
    }
    return { failure: `unknown encoding ${encoding}` };
  } catch (err) {
    return { failure: errorText(err) };
  }
}

/**
 * Reading values that come out of user code. Anything a handler throws or
 * returns, and any payload, option or handler object, may be a Proxy, an
 * object without a prototype, or carry getters that throw: reading one of
 * its properties, converting it to a string, even `instanceof` can throw.
 * These helpers never do.
 */

/** `obj[key]`, or `fallback` when reading it throws. */
export function readSafely(obj: object, key: PropertyKey, fallback: unknown = undefined): unknown {
  try {
    return (obj as Record<PropertyKey, unknown>)[key];
  } catch {
    return fallback;
  }
}

/** `String(value)`, or a description when that throws. */
export function textOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return '[a value that cannot be read]';
    }
  }
}

/** `value instanceof C`, false when the check itself throws (a Proxy's getPrototypeOf trap). */
export function isInstance(value: unknown, C: abstract new (...args: any[]) => unknown): boolean {
  try {
    return value instanceof C;
  } catch {
    return false;
  }
}

/** What the bus keeps of a thrown value. */
export interface ThrownSummary {
  message: string;
  name: string;
  stack?: string;
  /** False only when the value says `retryable: false`. */
  retryable: boolean;
}

export function summarizeThrown(error: unknown): ThrownSummary {
  if (error === null || (typeof error !== 'object' && typeof error !== 'function')) {
    return { message: textOf(error), name: typeof error, retryable: true };
  }
  const message = readSafely(error, 'message');
  const name = readSafely(error, 'name');
  const stack = readSafely(error, 'stack');
  const summary: ThrownSummary = {
    message: typeof message === 'string' ? message : message !== undefined ? textOf(message) : textOf(error),
    name: typeof name === 'string' ? name : isInstance(error, Error) ? 'Error' : typeof error,
    retryable: readSafely(error, 'retryable') !== false,
  };
  if (typeof stack === 'string') summary.stack = stack;
  return summary;
}

/**
 * The `then` of a handler's return value when it is a thenable; undefined
 * when it is not. Throws what reading `then` threw: the caller counts that
 * as the handler's failure.
 */
export function thenOf(result: unknown): ((onOk: () => void, onFail: (e: unknown) => void) => unknown) | undefined {
  if (result === null || (typeof result !== 'object' && typeof result !== 'function')) return undefined;
  const then = (result as { then?: unknown }).then;
  return typeof then === 'function' ? (then as (onOk: () => void, onFail: (e: unknown) => void) => unknown) : undefined;
}

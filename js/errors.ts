import type { BusError as BusErrorType, BusErrorCode } from '../index';
import { summarizeThrown } from './hostile';

/** Every error this package throws or rejects with carries a stable `code`. */
export class BusError extends Error implements BusErrorType {
  readonly code: BusErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: BusErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'BusError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/** Rethrows an error raised by the addon as a `BusError` with the same code. */
export function fromNative(err: unknown): BusError {
  if (err instanceof BusError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? (e.code as BusErrorCode) : 'NATIVE_ERROR';
  return new BusError(code, String(e?.message ?? err));
}

/** What a thrown value says, for messages: never throws, whatever the value. */
export function errorText(err: unknown): string {
  return summarizeThrown(err).message;
}

/** Runs `fn`, converting addon errors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

/**
 * Throw this (or any error with `retryable: false`) from a handler to send
 * the event straight to the dead-letter queue, without retries.
 */
export class NonRetryableError extends Error {
  readonly retryable = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

// The bus's logs: the native core's records (taken in batches, see
// src/binding/logs.rs) and this layer's own, written to the application's
// pino-style logger, or, without one, warnings and errors to
// process.emitWarning once each. The logger is user code: any of its
// methods may throw, and a throw never reaches the bus.
import type { LogLevel, LoggerLike } from '../index';
import { BusError, callNative, errorText, fromNative } from './errors';
import { describe } from './handlers';
import { readSafely } from './hostile';
import type { NativeBus } from './native';

const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace'];
/** pino's level names beyond ours, mapped to the filter's. */
const PINO_LEVELS: Record<string, string> = { fatal: 'error', silent: 'off' };
const ENV = 'BOOTIFY_EVENTS_LOG';
/** Kinds of warning already shown through process.emitWarning: once per process, however many buses. */
const warned = new Set<string>();

interface Entry {
  level: string;
  target: string;
  message: string;
  fields: Record<string, unknown>;
}

/**
 * The `logger` option of a bus's configuration, read defensively: absent,
 * or an object with `error`, `warn`, `info` and `debug` methods (`trace`
 * is optional). Anything else is `INVALID_CONFIG` naming the field.
 */
export function readLogger(input: unknown): LoggerLike | undefined {
  if (input === null || typeof input !== 'object') return undefined;
  let logger: unknown;
  try {
    logger = (input as { logger?: unknown }).logger;
    // BufferedEventBusOptions: `{ config: { logger } }` as well as `{ config, logger }`.
    if (logger === undefined) {
      const config = (input as { config?: unknown }).config;
      if (config !== null && typeof config === 'object') logger = (config as { logger?: unknown }).logger;
    }
  } catch (err) {
    throw new BusError('INVALID_CONFIG', `invalid configuration: reading logger threw: ${errorText(err)}`, { field: 'logger' });
  }
  if (logger === undefined) return undefined;
  const missing =
    logger === null || (typeof logger !== 'object' && typeof logger !== 'function')
      ? [`got ${describe(logger)}`]
      : LEVELS.slice(0, 4).filter((l) => typeof readSafely(logger as object, l) !== 'function').map((l) => `logger.${l} is not a function`);
  if (missing.length > 0) {
    throw new BusError(
      'INVALID_CONFIG',
      `invalid configuration: logger must be a pino-style logger with error, warn, info and debug methods (pino, or console): ${missing.join(', ')}`,
      { field: 'logger' },
    );
  }
  return logger as LoggerLike;
}

/** `BOOTIFY_EVENTS_LOG` if set, else the logger's own level, else a default. */
function filterFor(logger: LoggerLike | undefined, env: NodeJS.ProcessEnv): string {
  const fromEnv = env[ENV]?.trim();
  if (fromEnv) return fromEnv;
  if (logger === undefined) return 'warn';
  const level = readSafely(logger, 'level');
  if (typeof level === 'string') {
    const name = PINO_LEVELS[level] ?? level;
    if (name === 'off' || (LEVELS as readonly string[]).includes(name)) return name;
  }
  return 'info';
}

/**
 * The native side holds this callback strongly (a threadsafe function),
 * so it may reach the bus only weakly, or a bus never shut down could
 * never be collected. Made out here: a closure made in the constructor
 * would share its scope, which holds the native bus itself.
 */
function drainer(log: WeakRef<BusLog>): () => void {
  return () => log.deref()?.drain();
}

/** Records a logger call writes while one is running wait for it to return. */
const MAX_NESTED = 64;

export class BusLog {
  readonly #native: NativeBus;
  readonly #env: NodeJS.ProcessEnv;
  #logger: LoggerLike | undefined;
  #loggerFailed = false;
  /** Set while the logger runs: a logger that emits on this bus must not recurse through it. */
  #nested: Entry[] | undefined;

  constructor(native: NativeBus, logger: LoggerLike | undefined, env: NodeJS.ProcessEnv = process.env) {
    this.#native = native;
    this.#env = env;
    this.#logger = childOf(logger);
    const filter = filterFor(logger, env);
    try {
      native.attachLogs(filter, drainer(new WeakRef(this)));
    } catch (err) {
      // The filter is the one input here; anything else keeps its own code.
      const e = fromNative(err);
      throw e.code === 'INVALID_CONFIG' ? new BusError('INVALID_CONFIG', e.message, { field: ENV, value: filter }) : e;
    }
  }

  /** A new logger from `updateConfig`; its level applies unless the environment sets one. */
  setLogger(logger: LoggerLike): void {
    this.drain();
    callNative(() => this.#native.setLogFilter(filterFor(logger, this.#env)));
    this.#logger = childOf(logger);
  }

  /** Writes one record of this layer, if the filter keeps it. */
  write(level: LogLevel, target: string, message: string, fields: Record<string, unknown> = {}): void {
    if (this.#native.logEnabled(level, target)) this.#emit({ level, target, message, fields });
  }

  /** Takes the native core's waiting records and writes them. */
  drain(): void {
    const { records, dropped } = this.#native.takeLogs();
    for (const r of records) this.#emit(r as Entry);
    if (dropped > 0) {
      this.#emit({
        level: 'warn',
        target: 'events::log',
        message: 'native log records were dropped: the event loop did not take them in time',
        fields: { dropped },
      });
    }
  }

  /** Writes what is waiting and lets go of the callback, at shutdown. */
  close(): void {
    this.drain();
    this.#native.detachLogs();
  }

  #emit(entry: Entry): void {
    if (this.#nested !== undefined) {
      if (this.#nested.length < MAX_NESTED) this.#nested.push(entry);
      return;
    }
    this.#nested = [];
    try {
      this.#write(entry);
      // What the logger caused (it emitted, the queue overflowed, ...),
      // once, without letting it cause more.
      const caused = this.#nested;
      this.#nested = caused.slice(0, 0);
      for (const e of caused) this.#write(e);
    } finally {
      this.#nested = undefined;
    }
  }

  #write(entry: Entry): void {
    const logger = this.#logger;
    if (logger === undefined) return this.#fallback(entry);
    const level = entry.level === 'trace' && typeof readSafely(logger, 'trace') !== 'function' ? 'debug' : entry.level;
    try {
      const method = (logger as unknown as Record<string, (obj: object, msg: string) => void>)[level];
      method.call(logger, { target: entry.target, ...entry.fields }, entry.message);
    } catch (err) {
      if (this.#loggerFailed) return;
      this.#loggerFailed = true;
      process.emitWarning(`the logger given to the event bus threw (${errorText(err)}); its records are dropped`, {
        code: 'BOOTIFY_EVENTS_LOGGER',
      });
    }
  }

  /**
   * No logger: what `BOOTIFY_EVENTS_LOG` asked for goes to stderr as JSON
   * lines; otherwise each kind of warning or error is shown once.
   */
  #fallback(entry: Entry): void {
    if (this.#env[ENV]?.trim()) {
      process.stderr.write(`${JSON.stringify({ level: entry.level, time: Date.now(), target: entry.target, msg: entry.message, ...entry.fields })}\n`);
      return;
    }
    if (entry.level !== 'warn' && entry.level !== 'error') return;
    const kind = `${entry.target}\u0000${entry.message}`;
    if (warned.has(kind)) return;
    warned.add(kind);
    process.emitWarning(`${entry.message} (${JSON.stringify(entry.fields)}); further warnings like it are not shown`, {
      code: `BOOTIFY_EVENTS_${entry.level.toUpperCase()}`,
      detail: `from ${entry.target}; pass a logger in the bus configuration to receive every record`,
    });
  }
}

/** The logger's `child({ component })` when it has one (pino), else itself. */
function childOf(logger: LoggerLike | undefined): LoggerLike | undefined {
  if (logger === undefined) return undefined;
  const child = readSafely(logger, 'child');
  if (typeof child !== 'function') return logger;
  try {
    const made = child.call(logger, { component: '@bootifyjs/native-events' }) as unknown;
    const complete = made !== null && typeof made === 'object' && LEVELS.slice(0, 4).every((l) => typeof readSafely(made, l) === 'function');
    return complete ? (made as LoggerLike) : logger;
  } catch {
    return logger;
  }
}

// Public typings of @bootifyjs/native-events. Written by hand; the raw
// binding's generated typings are in js/binding.d.ts and are not public.

import 'reflect-metadata';
import { EventEmitter } from 'node:events';

/** Event priority. Lanes are served critical → normal → low. */
export type EventPriority = 'critical' | 'normal' | 'low';

/** BootifyJS's event shape: what `emit()` accepts and handlers are written against. */
export interface IEvent {
  /** The event type handlers subscribe to, e.g. `'user.registered'`. */
  readonly type: string;
  /** The event's data; the buffered bus also spreads its fields onto the delivered event. */
  payload: any;
  /** Kept across retries and reported with the event; generated when absent. */
  correlationId?: string;
}

/** BootifyJS's handler shape. A plain function `(event) => unknown` is accepted too. */
export interface IEventHandler<T = any> {
  /** Handles one event; throwing or rejecting counts as a failure (retried, then dead-lettered). */
  handle(event: T): Promise<void> | void;
}

/** A handler object or function. */
export type EventHandlerLike<T = any> = IEventHandler<T> | ((event: T) => unknown);

/** The event's own field names; they win over payload fields of the same name. */
type EventOwnKey = 'id' | 'type' | 'payload' | 'correlationId' | 'priority' | 'timestamp' | 'retryCount' | 'signal';

/**
 * The payload fields copied onto a handler's event: a plain object's own
 * data fields. Arrays, Dates, Maps, Sets, typed arrays and functions bring
 * none; methods stay on `event.payload`. (A class instance's getters cannot
 * be told from fields here; at run time only own enumerable properties are
 * copied.)
 */
export type PayloadFields<P> = 0 extends 1 & P
  ? any
  : P extends readonly unknown[] | Date | RegExp | Map<any, any> | Set<any> | ArrayBuffer | ArrayBufferView | ((...args: any[]) => any)
  ? {}
  : P extends object
    ? { readonly [K in keyof P as K extends EventOwnKey ? never : P[K] extends (...args: any[]) => any ? never : K]: P[K] }
    : {};

/**
 * What a handler receives: the event's own fields plus the payload's fields
 * at top level (`PayloadFields`), so handlers written for the synchronous
 * bus (`event.email`) keep working. Event fields win over payload fields of
 * the same name (the payload's stays under `event.payload`). Prints (with
 * `console.log`/`util.inspect`) as exactly these fields.
 */
export type BufferedEvent<P = any> = PayloadFields<P> & {
  /** Event id, as returned by `emitEvent`. */
  readonly id: string;
  /** The event type. */
  readonly type: string;
  /** The payload object exactly as emitted (same identity, same prototype). */
  readonly payload: P;
  /** The caller's correlation id, or the event id when none was given. */
  readonly correlationId: string;
  /** The lane the event was emitted into. */
  readonly priority: EventPriority;
  /** `Date.now()` at emission (one reading serves up to 256 emissions of one synchronous run). */
  readonly timestamp: number;
  /** 0 on the first attempt, k on retry k. */
  readonly retryCount: number;
  /**
   * Aborted when the handler outlives `handlerTimeout` (reason: a
   * `HandlerTimeoutError`) or the bus is shut down at its deadline (reason:
   * a `SHUTTING_DOWN` error). Pass it to fetch, timers and the like.
   */
  readonly signal: AbortSignal;
};

/** Options of `emitEvent`. */
export interface EventOptions {
  /** Defaults to `'normal'`. */
  priority?: EventPriority;
  /** Kept as given; generated (the event id) when absent. */
  correlationId?: string;
  /** Compatibility name (BootifyJS's API reference); ignored: time handlers out with the `handlerTimeout` config. */
  timeout?: number;
  /** Compatibility name (BootifyJS's API reference); ignored: throw a `NonRetryableError` to skip the retries. */
  retryable?: boolean;
}

/** Lane weights: the lane with the larger weight is served first. */
export interface PriorityWeights {
  /** Weight of the critical lane. */
  critical: number;
  /** Weight of the normal lane. */
  normal: number;
  /** Weight of the low lane. */
  low: number;
}

/** Memory limits; the first three mirror top-level fields. */
export interface MemoryLimits {
  /** Mirrors `maxQueueSize`. */
  maxQueueSize: number;
  /** Mirrors `maxEventSize`. */
  maxEventSize: number;
  /** Mirrors `maxMemoryMB`. */
  totalMemoryMB: number;
  /** Heap limit of worker isolates, in MB; accepted for BootifyJS compatibility, not applied. */
  workerHeapMB: number;
}

/** Performance expectations. */
export interface PerformanceLimits {
  /** Events per second the application expects to emit; accepted, not enforced (see `inputRate`). */
  maxInputRate: number;
  /** Events per second the handlers are expected to sustain; accepted, not enforced (see `processingRate`). */
  targetProcessingRate: number;
  /** Main-thread CPU share (percent) the bus may use; accepted, not measured. */
  maxMainThreadImpact: number;
  /** Queue latency (ms) above which the health check reports `degraded`. */
  maxQueueLatency: number;
}

/** Reliability settings. */
export interface ReliabilityLimits {
  /** Mirrors `retryAttempts`. */
  maxRetryAttempts: number;
  /** Pause (ms) before a native worker carries on after a caught panic. */
  workerRestartDelay: number;
  /** Mirrors `monitoring.healthCheckInterval`. */
  healthCheckInterval: number;
  /** How long (ms) `shutdown()` waits for queued events by default. */
  gracefulShutdownTimeout: number;
}

/** Thresholds the health checks compare measured values with. */
export interface AlertThresholds {
  /** Queue depth at which health turns `degraded`. */
  queueDepthWarning: number;
  /** Processing rate (events/s) below which, with events queued, health turns `degraded`. */
  processingRateMin: number;
  /** Failed workers at which health turns `unhealthy`. */
  maxFailedWorkers: number;
  /** Dead-letter queue size at which health turns `degraded`. */
  dlqSizeAlert: number;
  /** Main-thread CPU share (percent); accepted for BootifyJS compatibility, not measured. */
  mainThreadCpuAlert: number;
  /** Event-loop lag (ms) seen by the native workers above which health turns `degraded`. Default 100. */
  eventLoopLagMs: number;
}

/** Monitoring timers and thresholds. */
export interface MonitoringConfig {
  /** Emit `'metrics'` (and, with `healthMonitoring`, `'health_check'`) periodically. */
  enabled: boolean;
  /** Interval (ms) of the `'metrics'` event. */
  metricsInterval: number;
  /** Emit `'health_check'` every `healthCheckInterval` ms. */
  healthMonitoring: boolean;
  /** Interval (ms) of the `'health_check'` event. */
  healthCheckInterval: number;
  /** Thresholds the health checks compare measured values with. */
  alertThresholds: AlertThresholds;
}

/** The journal of a durable bus (`durability` other than `'memory'`). */
export interface JournalConfig {
  /** Directory of the journal's segment files and lock file; one bus at a time may open it. Required when durable. Env: `BUFFERED_EVENTS_JOURNAL_DIR`. */
  dir: string;
  /** Most disk the journal takes, in MB (>= 4); past it, emissions reject with `QUEUE_FULL` (or run inline with `fallbackToSync`). Default 1024. */
  maxDiskMB: number;
  /** Size of one preallocated segment file, in MB (1..4096, at most half of `maxDiskMB`). Default 32. */
  segmentMB: number;
}

/**
 * Where events wait. `'memory'` (default): in this process. `'redis'`: in
 * Redis Streams, shared by every bus of the same `name` in any process or
 * machine (README, "Running on several processes or machines").
 */
export interface BackendConfig {
  /** `'memory'` or `'redis'`. Default `'memory'`. */
  type: 'memory' | 'redis';
  /** `redis://[user:password@]host:port[/db]` or `rediss://...`; required with `'redis'`. Env: `BUFFERED_EVENTS_REDIS_URL`. */
  url: string;
  /** The group: buses with the same name share their events (1..64 of letters, digits, `- _ . :`). Default `'events'`. */
  name: string;
  /** This process's consumer name in the group; `''` (default): host, pid and a random suffix. */
  consumer: string;
  /** How long (ms) an event a process took may go without that process renewing its claim before another process takes it over (the holder is presumed dead). Default 30000. */
  claimIdleMs: number;
}

/** The full configuration, as `getConfig()` returns it. */
export interface BufferedEventConfig {
  /** Whether `bootstrapEventSystem` should use this bus. Default `true`. */
  enabled: boolean;
  /** Native dispatcher threads, 1..20. Default 5. */
  workerCount: number;
  /** Most events queued (not yet handed to a handler), >= 100. Default 10000. */
  maxQueueSize: number;
  /** Most bytes queued, in MB, >= 10. Default 50. */
  maxMemoryMB: number;
  /** Largest accepted event (estimated JSON size of the payload plus type and correlation id), >= 1024. Default 5120. */
  maxEventSize: number;
  /** Retries after the first failure, 0..10. Default 3. */
  retryAttempts: number;
  /** Delay before retry k (ms, each >= 100). Default [1000, 2000, 4000]. */
  retryDelays: number[];
  /** Handle an event inline when the queue is full, instead of rejecting with `QUEUE_FULL`. Default true. */
  fallbackToSync: boolean;
  /** Most handler invocations running at once, 1..65536. Default 1024. */
  concurrency: number;
  /** A lower lane passed over this long (ms) is served next, once. Default 100. */
  agingMs: number;
  /** A handler still running after this many ms fails with `HANDLER_TIMEOUT` (and is retried); 0 = no limit. Default 0. */
  handlerTimeout: number;
  /** Most entries kept in the dead-letter queue; the oldest is evicted (and counted). Default 1000. */
  deadLetterQueueSize: number;
  /** Worker isolates for handlers registered with `registerWorkerHandler`, 1..64; started on the first such event. Default: one per core, at most 8. */
  workerIsolates: number;
  /**
   * Main-thread handlers (retries and replays included) run in the async
   * context of the `emitEvent`/`emit` call, as the synchronous bus runs
   * them, so AsyncLocalStorage stores (BootifyJS's request context, a
   * logger's request id) reach them. Costs one `AsyncResource` per event;
   * turn off when nothing reads such stores. Worker isolates cannot share
   * it. Default true.
   */
  propagateContext: boolean;
  /**
   * What an accepted event survives. `'memory'` (default): nothing, queued
   * events live in this process only. `'process'`: the death of the
   * process (kill -9, a crash, an OOM kill): `emitEvent` resolves once the
   * event is written to the journal (`write(2)`). `'fsync'`: a crash of
   * the machine or a power loss too: `emitEvent` resolves once the event
   * is synced to disk (`fdatasync`, one sync for every event accepted
   * meanwhile). A durable bus replays its journal at `initialize()`:
   * every accepted event whose work had not ended runs again (at least
   * once). See README, "Durability".
   */
  durability: 'memory' | 'process' | 'fsync';
  /** Where and how much a durable bus journals. */
  journal: JournalConfig;
  /** Where events wait: this process, or Redis Streams shared by many (`durability` must then be `'memory'`). */
  backend: BackendConfig;
  /** Lane weights; the larger weight is served first. */
  priorities: PriorityWeights;
  /** Memory limits (mirrors of the top-level fields, plus `workerHeapMB`). */
  memoryLimits: MemoryLimits;
  /** Performance expectations; `maxQueueLatency` feeds the health check. */
  performanceLimits: PerformanceLimits;
  /** Worker restart delay, shutdown timeout and mirrors. */
  reliabilityLimits: ReliabilityLimits;
  /** Monitoring timers and alert thresholds. */
  monitoring: MonitoringConfig;
}

/**
 * Deep-partial configuration accepted by the constructor and `updateConfig`;
 * nested groups merge key by key. A field given in several places (a
 * top-level field and its BootifyJS mirror in `memoryLimits` /
 * `reliabilityLimits`, or a compatibility alias) takes the value that
 * differs from the default (from the running value, for `updateConfig`),
 * so `{ ...defaultBufferedEventConfig, maxQueueSize: 1000 }` works; two
 * different changed values are `INVALID_CONFIG` naming both. Unknown keys
 * are `INVALID_CONFIG` with the closest known key as a hint.
 */
export type BufferedEventConfigInput = {
  [K in keyof BufferedEventConfig]?: BufferedEventConfig[K] extends any[]
    ? BufferedEventConfig[K]
    : BufferedEventConfig[K] extends object
      ? { [P in keyof BufferedEventConfig[K]]?: BufferedEventConfig[K][P] extends object ? Partial<BufferedEventConfig[K][P]> : BufferedEventConfig[K][P] }
      : BufferedEventConfig[K];
} & CompatibilityConfigNames & LoggerOption;

/** A log level of the bus's records. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A pino-style logger: each method is called as `logger[level](fields, message)`,
 * `fields` holding `target` (the part of the bus: `events::worker`,
 * `events::retry`, `events::dead_letter`, `events::journal`, `events::queue`,
 * `events::isolate`, `events::shutdown`, `events::bus`, `events::log`) and the record's
 * values. `trace` falls back to `debug` when absent. A logger with `child()`
 * (pino) is used as `logger.child({ component: '@bootifyjs/native-events' })`.
 */
export interface LoggerLike {
  error(fields: object, message: string): unknown;
  warn(fields: object, message: string): unknown;
  info(fields: object, message: string): unknown;
  debug(fields: object, message: string): unknown;
  trace?(fields: object, message: string): unknown;
  child?(bindings: object): LoggerLike;
  /** pino's level name; it sets which records the native core keeps unless `BOOTIFY_EVENTS_LOG` does. */
  level?: string;
}

/**
 * Where the bus logs: lifecycle points and slow paths only (workers started,
 * scaled, stopped or panicked; retries scheduled; events dead-lettered;
 * queue overflow; isolates replaced; journal recovery, compaction and
 * failures; shutdown and its report), never once per event on the hot path.
 */
export interface LoggerOption {
  /**
   * Receives the bus's records, the native core's delivered in batches
   * (a pending batch never keeps the process alive). Level: the
   * `BOOTIFY_EVENTS_LOG` environment variable (a level, or `RUST_LOG`-style
   * directives such as `warn,events::journal=debug`), else `logger.level`,
   * else `info` (`warn` with no logger). Without a logger, each kind of warning and error goes to
   * `process.emitWarning` once, or, with `BOOTIFY_EVENTS_LOG` set, every
   * record at that level to stderr as a JSON line. Not part of
   * `getConfig()`; `updateConfig({ logger })` replaces it.
   */
  logger?: LoggerLike;
}

/**
 * Names from BootifyJS's published "Buffered Events" guide. Compatibility
 * names: prefer the canonical fields; a conflict with one is `INVALID_CONFIG`.
 */
export interface CompatibilityConfigNames {
  /** Compatibility name of `retryAttempts`. */
  maxRetries?: number;
  /** With `retryBackoffMultiplier`: `retryDelays` becomes `retryDelayMs · multiplier^k` for k < `retryAttempts` (ms, >= 100). */
  retryDelayMs?: number;
  /** The backoff factor for `retryDelayMs`, 1..10. Default 2. */
  retryBackoffMultiplier?: number;
  /** Accepted and validated (1..65536); has no effect: dispatch batches adapt to load. */
  batchSize?: number;
  /** Accepted and validated (ms, >= 0); has no effect: workers are woken per emission run, they do not poll. */
  processingIntervalMs?: number;
  /** Accepted and validated (a boolean); has no effect: retry delays always carry ±25 % jitter. */
  retryJitter?: boolean;
  /** Accepted and validated; has no effect: worker isolates take their heap from `memoryLimits.workerHeapMB`. */
  workerOptions?: { resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number; codeRangeSizeMb?: number; stackSizeMb?: number } };
}

/**
 * The TypeScript bus's constructor options, accepted as an equivalent of a
 * bare config: `{ config, fallbackToSync, enableMetrics, enableHealthMonitoring }`.
 */
export interface BufferedEventBusOptions extends LoggerOption {
  /** The configuration. */
  config?: BufferedEventConfigInput;
  /** Same as `config.fallbackToSync`. */
  fallbackToSync?: boolean;
  /** Same as `config.monitoring.healthMonitoring`. */
  enableHealthMonitoring?: boolean;
  /** Same as `config.monitoring.enabled`. */
  enableMetrics?: boolean;
}

/** The defaults BootifyJS uses, before environment overrides. */
export declare const defaultBufferedEventConfig: Readonly<BufferedEventConfig>;

/** Stable error codes; branch on `err.code`, not on messages. */
export type BusErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_EVENT_TYPE'
  | 'INVALID_PRIORITY'
  | 'INVALID_PAYLOAD'
  | 'INVALID_HANDLER'
  | 'INVALID_ARGUMENT'
  | 'INVALID_STATE'
  | 'EVENT_TOO_LARGE'
  | 'QUEUE_FULL'
  | 'SHUTTING_DOWN'
  | 'HANDLER_TIMEOUT'
  | 'WORKERS_UNAVAILABLE'
  | 'WORKER_PANIC'
  | 'ISOLATE_DIED'
  | 'HANDLER_MODULE_ERROR'
  | 'HANDLER_FAILED'
  | 'JOURNAL_ERROR'
  | 'JOURNAL_LOCKED'
  | 'BACKEND_UNAVAILABLE'
  | 'NATIVE_ERROR';

/** Every error this package throws or rejects with. */
export declare class BusError extends Error {
  /** Stable code to branch on. */
  readonly code: BusErrorCode;
  /** Machine-readable context: the field, the value, the limit. */
  readonly details?: Record<string, unknown>;
  /** Creates an error with a code, a message naming the field or value, and optional details. */
  constructor(code: BusErrorCode, message: string, details?: Record<string, unknown>);
}

/**
 * Throw this (or any error with `retryable: false`) from a handler to send
 * the event straight to the dead-letter queue, without retries.
 */
export declare class NonRetryableError extends Error {
  /** Tells the bus not to retry. */
  readonly retryable: false;
  /** Creates the error; `cause` as for `Error`. */
  constructor(message: string, options?: { cause?: unknown });
}

/** The failure recorded for a handler that outlived `handlerTimeout`; its code is `HANDLER_TIMEOUT`. */
export declare class HandlerTimeoutError extends BusError {
  /** Names the handler and the timeout it outlived. */
  constructor(handler: string, timeoutMs: number);
}

/** Counts for one priority lane. */
export interface PriorityMetrics {
  /** Events waiting in the lane. */
  queued: number;
  /** Deliveries handed to handlers from the lane (retries included). */
  dispatched: number;
  /** Deliveries from the lane whose handlers all settled. */
  completed: number;
}

/** A latency distribution from a native histogram (log-linear buckets, ~3 % resolution), in ms. */
export interface LatencyStats {
  /** Values recorded. */
  count: number;
  p50: number;
  p95: number;
  p99: number;
  /** Largest value. */
  max: number;
  /** Mean value. */
  mean: number;
}

/** Counters for one event type (deliveries, so retries count again). */
export interface TypeMetrics {
  /** Handlers registered for the type now. */
  handlers: number;
  /** Deliveries handed to handlers. */
  dispatched: number;
  /** Deliveries whose handlers all succeeded. */
  succeeded: number;
  /** Deliveries with a failed handler. */
  failed: number;
  /** Retries scheduled. */
  retries: number;
  /** Deliveries moved to the dead-letter queue. */
  deadLettered: number;
}

/** Queue, latency and throughput figures. */
export interface QueueMetrics {
  /** Events waiting in the ring (all lanes). */
  size: number;
  /** `size / maxQueueSize`, 0..1. */
  utilization: number;
  /** Events whose work has ended (every handler done, succeeded or dead-lettered). */
  totalProcessed: number;
  /** Mean time (ms) from dispatch to the last handler settling. */
  averageProcessingTime: number;
  /** Bytes queued / (`maxMemoryMB` in bytes), 0..1. */
  memoryUsage: number;
  /** Estimated payload bytes queued. */
  bytesQueued: number;
  /** Per-lane depth and dispatch counts. */
  byPriority: Record<EventPriority, PriorityMetrics>;
  /**
   * Per event type, keyed by type: every type while there are at most 1000,
   * else the 1000 with the most deliveries and one entry `'(other types)'`
   * summing the rest (its `handlers` is how many types it sums).
   */
  byType: Record<string, TypeMetrics>;
  /** Events accepted by `emitEvent`/`emit`. */
  enqueued: number;
  /** Deliveries running now. */
  inFlight: number;
  /** Handler invocations running now (bounded by `concurrency`). */
  inFlightInvocations: number;
  /** Retries waiting for their backoff. */
  scheduledRetries: number;
  /** Events whose work ended with every handler successful. */
  succeeded: number;
  /** Events whose work ended with a dead letter (a handler gave up). */
  failed: number;
  /**
   * Events that reached no handler: none was registered for the type when
   * the event was dispatched (or it was removed while the event waited).
   * Neither successes nor failures: not in `totalProcessed` or `successRate`.
   */
  unhandled: number;
  /**
   * On a Redis bus: events whose remaining work, a failed handler's retry,
   * went to the group's retry set, where any process may run it. Their
   * outcome is counted by the process that finishes them; not in
   * `totalProcessed` or `successRate` here. Always 0 in-process.
   */
  handedOver: number;
  /** Individual handler failures, retries included. */
  handlerFailures: number;
  /** Delivery-level counts (a retry is a delivery of its own). */
  deliveries: { dispatched: number; succeeded: number; failed: number; unhandled: number };
  /** Events handled inline because the queue was full (`fallbackToSync`) or no worker ran. */
  handledInline: number;
  /** Emissions refused, by error code. */
  rejected: Partial<Record<BusErrorCode, number>>;
  /** Deliveries lost because the JavaScript side was gone (process exit). */
  dropped: number;
  /** Dispatch to the last handler settling. */
  processingTime: LatencyStats;
  /** Emission to dispatch. */
  queueWaitTime: LatencyStats;
  /** How long the main thread took to run a batch the workers handed it. */
  eventLoopLag: LatencyStats;
  /** `'metrics'` / `'health_check'` listeners that threw on a monitoring tick (caught; the first is reported with `process.emitWarning`). */
  listenerErrors: number;
  /** Events emitted per second over the last 10 s (sampled natively every 100 ms). */
  inputRate: number;
  /** Deliveries completed per second over the last 10 s. */
  processingRate: number;
}

/** Retry and dead-letter figures. */
export interface RetryStats {
  /** Retries scheduled so far. */
  totalRetries: number;
  /** Retries waiting for their backoff to expire. */
  scheduledRetries: number;
  /** Retries whose backoff expired, waiting for a place in the window. */
  readyRetries: number;
  /** Entries in the dead-letter queue now. */
  deadLetterQueueSize: number;
  /** Deliveries moved to the dead-letter queue so far. */
  deadLettered: number;
  /** Dead letters evicted because the queue was full. */
  deadLetterEvicted: number;
  /** Failures that skipped the retries (`retryable: false`). */
  nonRetryable: number;
  /** Dead letters put back by `replayDeadLetter`. */
  replayed: number;
  /** `succeeded / totalProcessed` at the event level, 0..1 (1 when nothing has been processed). */
  successRate: number;
}

/** What `getMetrics()` returns. */
export interface EventSystemMetrics {
  /** Queue, latency and throughput figures. */
  queueMetrics: QueueMetrics;
  /** Retry and dead-letter figures. */
  retryStats: RetryStats;
  /** The journal of a durable bus; absent with `durability: 'memory'`. */
  journal?: JournalMetrics;
  /** A bus on Redis: the group's shared state and this process's traffic with it; absent with `backend.type: 'memory'`. */
  backend?: BackendMetrics;
  /** Compatibility name (BootifyJS's guide), non-enumerable: the queue's size, utilization (0..1) and whether it is full (`maxQueueSize` or `maxMemoryMB`). */
  readonly queue: { size: number; utilization: number; isFull: boolean };
  /**
   * Compatibility name (BootifyJS's guide), non-enumerable: `totalProcessed`;
   * `totalDropped`, emissions refused (any code) plus deliveries that could
   * not be made; `averageLatency`, mean queue wait plus mean processing
   * time (ms); `rate`, the processing rate (events/s).
   */
  readonly processing: { totalProcessed: number; totalDropped: number; averageLatency: number; rate: number };
  /** Compatibility name (BootifyJS's guide), non-enumerable: native workers running, and worker panics caught. */
  readonly workers: { active: number; failed: number };
  /** Compatibility name (BootifyJS's API reference), non-enumerable: `queueMetrics.size`. */
  readonly queueSize: number;
  /** Compatibility name (BootifyJS's API reference), non-enumerable: `queueMetrics.totalProcessed`. */
  readonly eventsProcessed: number;
  /** Compatibility name (BootifyJS's API reference), non-enumerable: `queueMetrics.averageProcessingTime`. */
  readonly averageProcessingTime: number;
}

/** A failed health check. */
export interface Alert {
  /** The check that fired (see `HealthCheck.name`). */
  type: string;
  /** `critical` makes the status `unhealthy`, `warning` `degraded`. */
  severity: 'warning' | 'critical';
  /** What was measured, in words. */
  message: string;
  /** The measured value that raised the alert. */
  value: number;
  /** The threshold it crossed. */
  threshold: number;
}

/** One rule of the health check, whether it fired or not. */
export interface HealthCheck {
  /** `running`, `workers`, `failed_workers`, `queue_depth`, `queue_utilization`, `processing_rate`, `dead_letters`, `queue_latency`, `event_loop_lag` or `isolates`. */
  name: string;
  /** `fail` for a failing critical check, `warn` for a failing warning. */
  status: 'pass' | 'warn' | 'fail';
  /** The measured value. */
  value: number;
  /** The threshold it is compared with. */
  threshold: number;
}

/** What `getHealthStatus()` resolves to. */
export interface HealthCheckResult {
  /** `unhealthy` if a critical check fails, `degraded` if a warning does, else `healthy`. */
  status: 'healthy' | 'degraded' | 'unhealthy';
  /** Native worker threads running. */
  activeWorkers: number;
  /** Events waiting in the ring. */
  queueDepth: number;
  /** Deliveries completed per second over the last 10 s. */
  processingRate: number;
  /** The checks that failed. */
  alerts: Alert[];
  /** Every check, failed or not. */
  checks: HealthCheck[];
  /** Compatibility name (BootifyJS's guide), non-enumerable: the alerts' messages. */
  readonly issues: string[];
}

/** One native worker. */
export interface WorkerInfo {
  /** Worker id (never reused). */
  id: number;
  /** `busy` while publishing a batch of deliveries. */
  state: 'busy' | 'idle';
  /** Panics caught in this worker (it carries on after `workerRestartDelay`). */
  restarts: number;
  /** Same as `restarts`: the only errors a worker can have. */
  errors: number;
  /** Events this worker handed to JavaScript. */
  eventsDispatched: number;
  /** Batches this worker published. */
  batches: number;
  /** Milliseconds since the bus started, at the worker's last batch. */
  lastActivityMs: number;
}

/** What `getWorkerStatistics()` returns. */
/** One worker isolate running worker handlers. */
export interface IsolateInfo {
  /** Its hand-off queue's id in the native engine (0 while starting). */
  sinkId: number;
  /** Its `worker_threads` thread id. */
  threadId: number;
  /** `'restarting'`: the isolate in this place died and its replacement waits out `workerRestartDelay` (doubled while replacements keep dying). */
  state: 'starting' | 'running' | 'restarting';
  /** Deliveries handed to it. */
  deliveries: number;
  /** Isolates this one replaced (died before it). */
  restarts: number;
  /** Share of time its event loop was busy, 0..1, since it started. */
  eventLoopUtilization: number;
}

/** Options of `registerWorkerHandler`. */
export interface WorkerHandlerOptions {
  /** The module export to call; `'default'` (the default) also accepts `module.exports` itself being the function. */
  exportName?: string;
}

export interface WorkerStatistics {
  /** Native workers running. */
  totalWorkers: number;
  /** Worker panics caught so far. */
  restarts: number;
  /** Workers handing a batch to JavaScript at the moment of the call. */
  activeWorkers: number;
  /** Workers not publishing at the moment of the call. */
  idleWorkers: number;
  /** Mean time (ms) from dispatch to the last handler settling. */
  averageProcessingTime: number;
  /** Deliveries completed (retries included). */
  totalEventsProcessed: number;
  /**
   * Deliveries the main thread dispatched itself, filling the room its own
   * acknowledgements freed in the window (see README, "Ordering and
   * concurrency"); the workers' `eventsDispatched` count the rest.
   */
  mainThreadDispatched: number;
  /**
   * Deliveries worker isolates took themselves from the deliveries waiting
   * for a free isolate, each time one had drained its queue (README,
   * "Worker isolates").
   */
  isolatesPulled: number;
  /** One entry per worker. */
  workers: WorkerInfo[];
  /** One entry per worker isolate (empty until the first worker-bound event). */
  isolates: IsolateInfo[];
  /** Compatibility name (BootifyJS's guide), non-enumerable: same as `restarts` (a panicked worker carries on after `workerRestartDelay`). */
  readonly failedWorkers: number;
  /** Compatibility name (BootifyJS's TS bus), non-enumerable: same as `workers`. */
  readonly workerStatuses: WorkerInfo[];
}

/** A queued event, as listed in a shutdown report or a dead letter. */
export interface QueuedEvent {
  /** Event id. */
  id: string;
  /** Event type. */
  type: string;
  /** The payload as emitted. */
  payload: unknown;
  /** Its lane. */
  priority: EventPriority;
  /** Its correlation id. */
  correlationId: string;
  /** `Date.now()` at emission. */
  timestamp: number;
  /** For a pending retry: the handler it is for (other handlers already ran). */
  handler?: string;
  /** For a pending retry: the attempt it would have been. */
  retryCount?: number;
}

/** One attempt's error in a dead letter. */
export interface AttemptError {
  /** The error's message (or the thrown value as a string). */
  message: string;
  /** The error's name (or the thrown value's type). */
  name: string;
  /** The error's stack, when it had one. */
  stack?: string | null;
  /** True when the attempt failed by outliving `handlerTimeout`. */
  timedOut: boolean;
  /** Milliseconds since the Unix epoch. */
  at: number;
}

/** Which dead letters `getDeadLetterQueue` returns. */
export interface DeadLetterPage {
  /** Entries to skip, oldest first; default 0. */
  offset?: number;
  /** Most entries to return; default all. */
  limit?: number;
}

/** A delivery that used up its attempts (or failed with a non-retryable error). */
export interface DeadLetterEntry {
  /** Dead-letter id, for replay and removal. */
  id: number;
  /** The event, payload included. */
  event: QueuedEvent;
  /** `event.type`, so `emitEvent(entry.type, entry.payload)` re-emits it (BootifyJS's guide). */
  type: string;
  /** `event.payload`. */
  payload: unknown;
  /** `event.correlationId`. */
  correlationId: string;
  /** The handler that failed (other handlers of the event are not affected). */
  handler: string;
  /**
   * On a Redis bus: the failed handler's stable key in the group (its name,
   * `#2`… for a second handler of that name on the type); a replay runs
   * that handler alone. Absent in-process, and on letters of entries that
   * could not be read (their replay runs every handler of the type).
   */
  handlerKey?: string;
  /** Runs made, the first included. */
  attempts: number;
  /** The last attempt's error. */
  lastError: { message: string; name: string; stack?: string };
  /** Every attempt's error, oldest first. */
  errors: AttemptError[];
  /** Milliseconds since the Unix epoch, when it was dead-lettered. */
  timestamp: number;
}

/** Options of `shutdown()`. */
export interface ShutdownOptions {
  /** Milliseconds to wait for queued events; default `reliabilityLimits.gracefulShutdownTimeout`. */
  timeout?: number;
}

/** What `shutdown()` resolves with; every accepted event is in exactly one place. */
export interface ShutdownReport {
  /** Events that finished between the call and the end of the drain. */
  drained: number;
  /** Events never started, with their payloads, so the caller can persist them. */
  remaining: QueuedEvent[];
  /** Events whose handlers were still running at the deadline. */
  inFlightAborted: QueuedEvent[];
}

/** A handler failure as emitted on `'handler_error'`. */
export interface HandlerErrorInfo {
  /** The event whose handler failed. */
  event: QueuedEvent;
  /** The handler's name (function or class/method name), or `'anonymous'`. */
  handler: string;
  /** What the handler threw or rejected with. */
  error: unknown;
  /** The attempt that failed (0 = first). */
  retryCount: number;
  /** True when the handler outlived `handlerTimeout`. */
  timedOut: boolean;
}

/** What a durable bus's journal holds and has done. */
export interface JournalMetrics {
  durability: 'process' | 'fsync';
  dir: string;
  /** Disk the segment files take (preallocated), and the bound. */
  diskBytes: number;
  maxDiskBytes: number;
  segments: number;
  recordsWritten: number;
  bytesWritten: number;
  /** Durations of the data syncs, in ms (`'fsync'` only). */
  fsyncs: LatencyStats;
  /** Events whose records were copied out of a mostly settled segment so it could be deleted. */
  copiedForward: number;
  segmentsDeleted: number;
  /** Unfinished events recovered at `initialize()` and handed to the engine. Each may have run before the restart: at most this many run twice. */
  recovered: number;
  /** Recovered events still waiting for a handler of their type. */
  recoveredWaiting: number;
  /** Recovered events that could not be decoded; each became a dead letter (`JournalDecodeError`). */
  undecodable: number;
  /** Torn tails cut off at recovery (a write the crash interrupted), and their bytes. */
  truncated: number;
  truncatedBytes: number;
  /** Damage found in the middle of the journal at recovery, skipped up to the next good record. */
  corruptions: { segment: number; offset: number; reason: string; skipped: number }[];
  /** Emissions refused (`QUEUE_FULL`) because the journal reached `maxDiskMB`. */
  rejectedFull: number;
  /** Emissions handled inline instead, with `fallbackToSync`. */
  inlineFull: number;
  /** Why the journal stopped writing, once a write or sync failed: emissions then reject with `JOURNAL_ERROR`. */
  failure: string | null;
}

/** A bus on Redis (`backend.type: 'redis'`). */
export interface BackendMetrics {
  type: 'redis';
  /** `backend.name`, and this process's consumer name in the group. */
  name: string;
  consumer: string;
  /** Whether Redis answers now; health is `unhealthy` while it does not. */
  connected: boolean;
  serverVersion: string;
  /** Redis's `maxmemory-policy` (`''` when it would not say); anything but `noeviction` can lose events. */
  evictionPolicy: string;
  /** The whole group, as last read from Redis (about once a second). */
  group: {
    /** Entries in each priority's streams, those being handled included. */
    queued: { critical: number; normal: number; low: number };
    /** Taken by a process and not yet finished. */
    pending: number;
    /** Processes that have read from the group (dead ones stay listed in Redis). */
    consumers: number;
    /** Types with events waiting that no process of the group reads. */
    unhandledTypes: { type: string; waiting: number }[];
    /** Failed handlers' retries waiting in the group's retry set for their backoff. */
    retrying: number;
    /** How long ago it was read (ms); -1 before the first reading. */
    readAgoMs: number;
  };
  /** The group's dead letters (as last read); also `retryStats.deadLetterQueueSize` on a Redis bus. */
  deadLetters: number;
  /** Taken by this process and not yet finished. */
  held: number;
  /** Events this process added to the group. */
  emitted: number;
  /** Entries this process took from the group, takeovers included. */
  taken: number;
  /** Of those, taken over from a process presumed dead (each counts as a delivery). */
  reclaimed: number;
  /** Finished entries acknowledged and deleted (an entry another process had acknowledged already is not counted). */
  settled: number;
  /** Failed handlers whose retry this process put in the group's retry set. */
  retried: number;
  /** Retries this process moved from the group's retry set to their streams when due (any process may move any). */
  promoted: number;
  /** Retries for a handler key no handler of this process has (another version of the application wrote them): dead-lettered as `UnknownHandlerError`. */
  unknownHandlers: number;
  /** Retries whose data was gone from Redis when they fell due (something else deleted it): lost, and counted here. */
  retriesGone: number;
  /** Claim renewals of entries held longer than a third of `claimIdleMs`. */
  renewed: number;
  /** Entries this process held that another process took over meanwhile (this one was cut off from Redis longer than `claimIdleMs`): they run there too. */
  lost: number;
  /** Redis commands that failed. */
  errors: number;
  /** Times Redis became unreachable. */
  outages: number;
  /** Entries that could not be read (dead-lettered as `StreamDecodeError`). */
  undecodable: number;
  /** Entries delivered more than `retryAttempts + 1` times without finishing (dead-lettered as `RedeliveryLimitError`, not run again). */
  overDelivered: number;
  /** Emissions handled inline (`fallbackToSync`) because Redis did not take them, or the group was full. */
  inlineUnavailable: number;
  inlineFull: number;
  /** Emissions refused with `QUEUE_FULL`: the group held `maxQueueSize` events. */
  rejectedFull: number;
}

/** Events the bus emits as an EventEmitter, with their arguments. */
export interface BufferedEventBusEvents {
  /** `initialize()` finished. */
  initialized: [];
  /** `shutdown()` finished, with its report. */
  shutdown: [ShutdownReport];
  /** A handler failed (it may be retried). */
  handler_error: [HandlerErrorInfo];
  /** Every `monitoring.metricsInterval` ms. */
  metrics: [EventSystemMetrics];
  /** Every `monitoring.healthCheckInterval` ms. */
  health_check: [HealthCheckResult];
  /** A native worker panicked (`WORKER_PANIC`), none could start (`WORKERS_UNAVAILABLE`), or the two sides disagreed (`NATIVE_ERROR`). */
  worker_error: [Error];
  /**
   * `JOURNAL_ERROR`: at `initialize()`, the journal was damaged in the
   * middle (`details.corruptions` says where; recovery went on past it);
   * at `shutdown()`, the journal could not be closed cleanly (a write had
   * failed), so it may hold less than the report lists.
   */
  journal_error: [Error];
}

/**
 * The native buffered event bus. Events travel through a SharedArrayBuffer
 * priority ring to Rust worker threads, which hand them back to this
 * thread's handlers in priority order, at most `concurrency` at a time.
 */
export declare class BufferedEventBusService extends EventEmitter {
  /**
   * Takes a config (or BootifyJS's `{ config, ... }` options). Throws
   * `INVALID_CONFIG` naming every offending field.
   */
  constructor(config?: BufferedEventConfigInput | BufferedEventBusOptions);
  /** Starts the native workers. Events emitted before are queued, then delivered. Throws `INVALID_STATE` after `shutdown()`: a bus does not restart. */
  initialize(): Promise<void>;
  /** Whether the workers are running and the bus accepts events. */
  isReady(): boolean;
  /** The resolved configuration. */
  getConfig(): BufferedEventConfig;
  /**
   * Merges `partial` over the running configuration, validated like the
   * constructor's input, and applies it live: retry policy (retries
   * scheduled from now on), `handlerTimeout` (deliveries started from now
   * on), `concurrency` (up to the value the bus was created with),
   * `agingMs`, `workerCount`, `fallbackToSync`, thresholds, monitoring and
   * timeouts. Fields fixed at construction (sizes, priorities,
   * `workerIsolates`, `deadLetterQueueSize`, `enabled`) reject with
   * `INVALID_CONFIG` naming them when they change; nothing changes then.
   * Environment variables are not re-read.
   */
  updateConfig(partial: BufferedEventConfigInput | BufferedEventBusOptions): Promise<void>;
  /**
   * Queues an event and resolves to its id. Rejects with `INVALID_EVENT_TYPE`,
   * `INVALID_PRIORITY`, `INVALID_PAYLOAD`, `EVENT_TOO_LARGE`, `QUEUE_FULL`
   * (queue full and `fallbackToSync` off; with it on, the event is handled
   * inline and the promise resolves once its handlers settle) or `SHUTTING_DOWN`.
   */
  emitEvent<P = any>(type: string, payload: P, options?: EventOptions): Promise<string>;
  /**
   * Queues a BootifyJS event object (`type`, `payload`, optional
   * `correlationId`), so `eventBus.emit(new UserRegisteredEvent(...))`
   * moves over by changing only the receiver. Called with a string it is
   * EventEmitter's `emit` (for the lifecycle events below) and runs no
   * handler: with a string that names an event type with handlers and no
   * EventEmitter listener it throws `INVALID_ARGUMENT` (use `emitEvent`).
   */
  emit(event: IEvent, options?: Omit<EventOptions, 'correlationId'>): Promise<string>;
  /** Adds a handler; every handler of a type runs for each event. Returns a function that removes it. */
  registerHandler<P = any>(eventType: string, handler: EventHandlerLike<BufferedEvent<P>>): () => void;
  /**
   * Runs `eventType`'s events in worker isolates with the function exported
   * by `modulePath` (resolved from the working directory). The module is
   * loaded in a probe isolate first: one that cannot load, or whose export
   * is not a function, rejects with `HANDLER_MODULE_ERROR`. A type's
   * handlers all run on one side (`INVALID_HANDLER` otherwise). Events of
   * the type are serialised once (structured clone) into shared memory;
   * handlers get the same event shape, retries, dead letters and
   * `event.signal`. Resolves to a function that removes the handler.
   */
  registerWorkerHandler(eventType: string, modulePath: string, options?: WorkerHandlerOptions): Promise<() => void>;
  /** Removes one handler, or every handler of the type when `handler` is omitted. Returns whether anything was removed. */
  unregisterHandler(eventType: string, handler?: EventHandlerLike): boolean;
  /** Queue, latency, throughput, retry and dead-letter figures, read without stopping the workers. */
  getMetrics(): EventSystemMetrics;
  /** The metrics in the Prometheus text exposition format, to serve from a route. */
  metricsText(): string;
  /** Compares measured values with the thresholds (see the README's Health section). */
  getHealthStatus(): Promise<HealthCheckResult>;
  /** Native worker counts and per-worker entries. */
  getWorkerStatistics(): WorkerStatistics;
  /** Sets the number of native workers (1..20) while events flow. */
  scaleWorkers(count: number): Promise<void>;
  /** The dead letters, oldest first: all of them, or the page asked for (`{ offset: 0, limit: 100 }`). On Redis, the group's, as last read (about once a second). */
  getDeadLetterQueue(page?: DeadLetterPage): DeadLetterEntry[];
  /**
   * Puts one dead letter (or all) back in front of its lane with fresh
   * attempts, for the handler that failed; returns how many. On Redis the
   * event goes back to its stream for whichever process takes it, and runs
   * every handler of its type again (its other letters go with it).
   */
  replayDeadLetter(id?: number): number;
  /** Removes one dead letter; returns whether it existed. */
  removeDeadLetter(id: number): boolean;
  /** Removes every dead letter; returns how many. */
  clearDeadLetterQueue(): number;
  /** Stops intake, drains within the timeout, stops the workers. Safe to call twice. */
  shutdown(options?: ShutdownOptions): Promise<ShutdownReport>;

  /** Typed `EventEmitter.on` for the events in `BufferedEventBusEvents`. */
  on<K extends keyof BufferedEventBusEvents>(event: K, listener: (...args: BufferedEventBusEvents[K]) => void): this;
  /** Typed `EventEmitter.once` for the events in `BufferedEventBusEvents`. */
  once<K extends keyof BufferedEventBusEvents>(event: K, listener: (...args: BufferedEventBusEvents[K]) => void): this;
  /** EventEmitter's own `emit`, for the lifecycle events above. */
  emit(eventName: string | symbol, ...args: any[]): boolean;
}

/** Hooks that make failure paths happen for real in tests. Not for production use. */
export declare namespace testing {
  /** The next native worker to take a batch of deliveries panics while holding it. */
  function injectWorkerPanic(bus: BufferedEventBusService): void;
  /** While set, starting native worker threads fails (call before `initialize()`). */
  function failWorkerStarts(bus: BufferedEventBusService, fail?: boolean): void;
}

// ---- BootifyJS integration ------------------------------------------------

/** Metadata key BootifyJS uses: `true` on a class decorated `@EventListener()`. */
export declare const EVENT_LISTENER_KEY: 'bootify:event-listener';
/** Metadata key BootifyJS uses: `{ eventType, methodName }[]` on the class. */
export declare const ON_EVENT_KEY: 'bootify:on-event';

/** One `@OnEvent` entry, as stored under `ON_EVENT_KEY`. */
export interface OnEventMetadata {
  /** The event type the method handles. */
  eventType: string;
  /** The decorated method. */
  methodName: string | symbol;
}

/** Marks a class as an event listener (BootifyJS metadata) and registers it as a singleton component. */
export declare function EventListener(): ClassDecorator;
/** Registers the method as a handler of `eventType`; a class may have several, several classes may share a type. */
export declare function OnEvent(eventType: string): MethodDecorator;

/** A class, string or symbol naming a dependency. */
export type Token<T = unknown> = (abstract new (...args: any[]) => T) | string | symbol;

/** How a container makes a dependency. */
export interface Provider<T = unknown> {
  /** Makes the instance by calling this. */
  useFactory?: () => T;
  /** Makes the instance by constructing this class (with injection). */
  useClass?: new (...args: any[]) => T;
  /** Uses this value as is. */
  useValue?: T;
  /** Default `'singleton'`. */
  scope?: 'singleton' | 'transient';
}

/** What `bootstrapEventSystem` needs from a container; BootifyJS's `container` fits. */
export interface ContainerLike {
  /** The instance for `token`. */
  resolve<T>(token: Token<T>): T;
  /** Registers how to make `token`. */
  register<T>(token: Token<T>, provider: Provider<T>): unknown;
}

/** A small DI container: singletons, constructor injection (`design:paramtypes`), `@Autowired()`. */
export declare class Container implements ContainerLike {
  /** Registers (or replaces) how to make `token`. */
  register<T>(token: Token<T>, provider: Provider<T>): this;
  /** Whether the token is registered or is a decorated component. */
  has(token: Token): boolean;
  /** The instance for `token`; an unregistered class is its own singleton provider. Throws on unknown string/symbol tokens and on cycles. */
  resolve<T>(token: Token<T>): T;
}

/** The container used when `bootstrapEventSystem` is given none. */
export declare const container: Container;
/** Registers the class as a singleton component. */
export declare function Component(): ClassDecorator;
/** Same as `Component()`, for services. */
export declare function Service(): ClassDecorator;
/** Injects a dependency into a property or constructor parameter; the token defaults to the declared type. */
export declare function Autowired(token?: Token): PropertyDecorator & ParameterDecorator;
/** Every class decorated `@Service()`, `@Component()` or `@EventListener()` so far, in declaration order. */
export declare function getAllComponents(): Array<abstract new (...args: any[]) => unknown>;

/** A failure kept by the synchronous bus. */
export interface SyncDeadLetter {
  /** The event object as emitted. */
  event: IEvent;
  /** The handler that failed. */
  handler: string;
  /** What it threw or rejected with. */
  error: unknown;
  /** `Date.now()` at the failure. */
  timestamp: number;
}

/** The synchronous bus: `emit` runs every handler at once, with the event object itself. */
export declare class EventBusService {
  /** `maxDeadLetters` (default 1000) bounds the dead-letter list; the oldest is dropped. */
  constructor(options?: { maxDeadLetters?: number });
  /** Adds a handler; returns a function that removes it. */
  subscribe<E extends IEvent = IEvent>(eventType: string, handler: EventHandlerLike<E>): () => void;
  /** Removes one handler, or all of the type; returns whether anything was removed. */
  unsubscribe(eventType: string, handler?: EventHandlerLike): boolean;
  /** Runs every handler of `event.type`; resolves once all settled. A failing handler is dead-lettered, not thrown. */
  emit(event: IEvent): Promise<void>;
  /** Failures so far, oldest first. */
  getDeadLetterQueue(): SyncDeadLetter[];
  /** Empties the list; returns how many entries it had. */
  clearDeadLetterQueue(): number;
}

/** Options of `bootstrapEventSystem`. */
export interface BootstrapOptions {
  /** Also register handlers on, and start, the native buffered bus. */
  useBufferedProcessing?: boolean;
  /** Its configuration; with `enabled: false` no buffered bus is made. */
  bufferedEventConfig?: BufferedEventConfigInput;
  /**
   * BootifyJS's container (or any with `resolve`/`register`); default: this
   * package's `container`. Listener classes it does not know (decorated with
   * this package's `@EventListener()`) are registered in it as singletons
   * when it has `isRegistered`.
   */
  container?: ContainerLike;
  /**
   * The synchronous bus the application's services use, to subscribe the
   * listeners on. Default: the bus behind `eventBusToken`; else a class
   * named `EventBusService` among the container's `getRegisteredComponents()`
   * (BootifyJS's own), resolved from it; else this package's
   * `EventBusService`, registered in the container.
   */
  eventBus?: SyncEventBusLike;
  /** A container token that resolves to the application's synchronous bus. */
  eventBusToken?: Token;
}

/** A synchronous bus the listeners can be subscribed on (BootifyJS's `EventBusService` fits). */
export interface SyncEventBusLike {
  /** Subscribes `{ handle(event) }` to `eventType`. */
  subscribe(eventType: string, handler: IEventHandler): unknown;
}

/** What `bootstrapEventSystem` returns. */
export interface EventSystem {
  /**
   * The synchronous bus the listeners were subscribed on (always): this
   * package's `EventBusService`, or the application's own when one was
   * passed or found in the container (typed as this package's; BootifyJS's
   * has the same `subscribe`/`emit`).
   */
  eventBus: EventBusService;
  /** `null` unless `useBufferedProcessing` and the config is `enabled`. */
  bufferedEventBus: BufferedEventBusService | null;
  /** Settles when the buffered bus's `initialize()` does; events emitted before are queued, not lost. */
  ready: Promise<void>;
}

/**
 * BootifyJS's bootstrap: registers every `@OnEvent` method of every
 * `@EventListener()` component (resolved from the container, bound to its
 * instance) on the synchronous bus and, with buffered processing, on the
 * native bus, which it registers in the container (so `@Autowired()`
 * `BufferedEventBusService` resolves to it) and starts.
 */
export declare function bootstrapEventSystem(components?: readonly unknown[], options?: BootstrapOptions): EventSystem;

// Public typings of @bootifyjs/native-events/fastify. Written by hand; the
// implementation (js/fastify*.ts) imports its types from here.

import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type {
  AttemptError,
  BufferedEventBusService,
  EventPriority,
  HealthCheck,
  HealthCheckResult,
  IsolateInfo,
  LatencyStats,
  PriorityMetrics,
  WorkerInfo,
} from './index';

/** The dead-letter admin routes and who may use them. */
export interface NativeEventsAdminOptions {
  /**
   * Decides, for each request to an admin route, whether it may go on.
   * Only `true` (or a promise of `true`) lets it through; anything else is
   * a 403. It runs before the request's input is parsed or validated, so
   * a denied caller learns nothing about the routes. A hook that throws or
   * rejects answers 500 (the error is logged with `request.log.error`, not
   * sent). Called with `this` set to the `admin` object. Browser requests
   * marked as coming from another site (`Sec-Fetch-Site` other than
   * `same-origin` or `none`) are refused with 403 before it is asked, so a
   * cookie-based `authorize` is not open to cross-site request forgery;
   * clients that send no such header (curl, servers) are unaffected.
   */
  authorize(request: FastifyRequest): boolean | Promise<boolean>;
}

/**
 * Options of the plugin. Where the routes live is Fastify's own `prefix`
 * register option (`app.register(fastifyNativeEvents, { bus, prefix:
 * '/events' })`); without one they sit at the root (`/metrics`, ...).
 * Fastify's `logLevel` register option applies to every route.
 */
export interface NativeEventsPluginOptions {
  /** The bus to observe and administer. The plugin never initializes or shuts it down. */
  bus: BufferedEventBusService;
  /**
   * Serve the dashboard page (`GET /dashboard`) and its data (`GET /stats`).
   * Default `true`. The page polls `stats` (relative to itself) every
   * second and loads nothing from elsewhere; opened as
   * `dashboard#token=<t>`, it sends `Authorization: Bearer <t>` with all
   * its requests (cookies go along as with any same-origin request), and
   * shows the dead-letter buttons only when those routes answer it 200.
   */
  dashboard?: boolean;
  /**
   * Register the dead-letter routes (`/dead-letters...`), guarded by
   * `authorize`. Absent (the default): the routes do not exist (404).
   * Given without a function `authorize`: registration fails with a
   * `BusError` of code `INVALID_CONFIG` naming `admin.authorize`.
   */
  admin?: NativeEventsAdminOptions;
}

/**
 * The Fastify plugin: `GET /metrics`, `GET /health`, the dashboard
 * (`GET /dashboard`, `GET /stats`) and, with `admin`, the dead-letter
 * routes. Encapsulated (wrapped with `fastify-plugin` for its name and
 * Fastify version check, with `encapsulate: true`): its error handler
 * stays inside, Fastify's `prefix` applies, and hooks of the parent
 * context (an authentication `onRequest` hook, say) run for its routes
 * too. It may be registered several times (several buses, or one bus with
 * and without `admin`), each under its own prefix. Options are checked at registration
 * (`INVALID_CONFIG` naming the field). Needs `fastify` 5 and
 * `fastify-plugin` 5 (optional peer dependencies); importing this entry
 * without `fastify-plugin` installed throws `INVALID_STATE`.
 */
export declare const fastifyNativeEvents: FastifyPluginAsync<NativeEventsPluginOptions>;
export default fastifyNativeEvents;

/** The body of every error the plugin's routes answer with (400, 403, 404, 500, 503). */
export interface NativeEventsErrorBody {
  /** The HTTP status text, e.g. `'Bad Request'`. */
  error: string;
  /** What went wrong, naming the offending field or value. */
  message: string;
  /** The bus's error code, when a bus call failed (`SHUTTING_DOWN`, ...). */
  code?: string;
}

/**
 * `GET /health`: `getHealthStatus()` as JSON (status 200 when `healthy`
 * or `degraded`, 503 when `unhealthy`). Non-finite numbers become `null`.
 */
export type HealthResponse = Omit<HealthCheckResult, 'issues'>;

/** `GET /stats`: what the dashboard draws, read in one go. Non-finite numbers become `null`. */
export interface NativeEventsStats {
  /** `Date.now()` when the figures were read. */
  at: number;
  /** `bus.isReady()`. */
  ready: boolean;
  /** Whether the dead-letter routes are registered; `authorize` still decides who may use them. */
  admin: boolean;
  /** Event counts since the bus started (see `QueueMetrics`). */
  totals: {
    enqueued: number;
    /** `totalProcessed`: events whose work ended. */
    processed: number;
    succeeded: number;
    /** Events that ended with a dead letter. */
    failed: number;
    unhandled: number;
    handlerFailures: number;
    /** Retries scheduled. */
    retries: number;
    handledInline: number;
    /** Emissions refused, all codes summed. */
    rejected: number;
    dropped: number;
  };
  /** The bus's own 10 s rates, events/s. */
  rates: { input: number; processing: number };
  /** Queue depth and work in progress now. */
  queue: {
    size: number;
    utilization: number;
    memoryUsage: number;
    inFlight: number;
    inFlightInvocations: number;
    scheduledRetries: number;
    byPriority: Record<EventPriority, PriorityMetrics>;
  };
  /** The bus's latency histograms, cumulative since it started, ms. */
  latency: { processing: LatencyStats; queueWait: LatencyStats; eventLoopLag: LatencyStats };
  /**
   * The processing-time histogram's cumulative bucket counts, as
   * `metricsText()` renders them: `le` holds the upper bounds in ms (the
   * last, +Inf, is `null`), `processing` the counts. Two readings' difference
   * gives the distribution of the interval between them. Empty when the
   * text could not be read.
   */
  buckets: { le: (number | null)[]; processing: number[] };
  /** Dead-letter figures (see `RetryStats`). */
  deadLetters: { size: number; deadLettered: number; evicted: number; replayed: number; nonRetryable: number };
  /** `retryStats.successRate`, 0..1. */
  successRate: number;
  /** Native workers (see `WorkerStatistics`). */
  workers: { total: number; active: number; idle: number; restarts: number; mainThreadDispatched: number; isolatesPulled: number; list: WorkerInfo[] };
  /** Worker isolates (empty until the first worker-bound event). */
  isolates: IsolateInfo[];
  /**
   * The last health evaluation, at most 2 s old: `/stats` evaluates
   * `getHealthStatus()` only when the last evaluation (by `/stats` or
   * `/health`) is older, so open dashboards add at most one evaluation
   * every 2 s. `null` when the evaluation failed.
   */
  health: {
    status: HealthCheckResult['status'];
    /** `Date.now()` of the evaluation. */
    at: number;
    checks: HealthCheck[];
    alerts: { type: string; severity: 'warning' | 'critical'; message: string }[];
  } | null;
}

/**
 * A dead letter as the admin routes render it. The payload is a JSON
 * rendering that never fails: plain objects (own enumerable keys) and
 * arrays as they are, at most 8 levels deep and 100 keys or items per
 * level, strings cut at 2000 characters, about 50,000 characters and 5000
 * values in all (`"[…]"` past that); what JSON cannot carry is
 * described in a string in brackets (`"[BigInt 10]"`, `"[Circular]"`,
 * `"[Function f]"`, `"[Unreadable: …]"`); Dates become ISO strings, Maps
 * `{ "[Map]": [[key, value], …] }` and Sets `{ "[Set]": […] }`.
 */
export interface DeadLetterView {
  /** Dead-letter id, for the replay and remove routes. */
  id: number;
  /** The event type. */
  type: string;
  /** The handler that failed. */
  handler: string;
  /** Runs made, the first included. */
  attempts: number;
  /** When it was dead-lettered, ms since the Unix epoch. */
  timestamp: number;
  /** The event's id, lane, correlation id and emission time. */
  event: { id: string; priority: EventPriority; correlationId: string; timestamp: number };
  /** The payload, rendered as described above. */
  payload: unknown;
  /** The last attempt's error (stack cut at 8000 characters). */
  lastError: { name: string; message: string; stack?: string };
  /** Every attempt's error, oldest first, without stacks. */
  errors: Omit<AttemptError, 'stack'>[];
}

/** `POST /dead-letters/:id/replay` (always 1; 404 for an unknown id) and `POST /dead-letters/replay` (all). */
export interface DeadLetterReplayResponse {
  /** Dead letters put back in front of their lanes with fresh attempts. */
  replayed: number;
}

/** `DELETE /dead-letters/:id` (always 1; 404 for an unknown id) and `DELETE /dead-letters` (all). */
export interface DeadLetterRemoveResponse {
  /** Dead letters removed. */
  removed: number;
}

/** `GET /dead-letters`: one page of the dead-letter queue, oldest first. */
export interface DeadLetterListResponse {
  /** Entries in the queue now (all pages). */
  total: number;
  /** The `offset` used (default 0). */
  offset: number;
  /** The `limit` used (default 50, at most 1000). */
  limit: number;
  /** The page. */
  entries: DeadLetterView[];
}

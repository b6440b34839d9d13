// JSON views of the bus's figures and dead letters for the Fastify routes.
// Dead letters carry user values (payloads the handlers may have mutated
// after emission, error messages, type names): the views are plain JSON
// with finite numbers and bounded strings, whatever those values hold,
// and building them never throws.

import type { DeadLetterView, HealthResponse, NativeEventsStats } from '../fastify';
import type {
  BufferedEventBusService,
  DeadLetterEntry,
  HealthCheckResult,
  IsolateInfo,
  LatencyStats,
  PriorityMetrics,
  WorkerInfo,
} from '../index';
import { summarizeThrown, textOf } from './hostile';

const MAX_DEPTH = 8;
const MAX_ITEMS = 100;
const MAX_STRING = 2000;
const MAX_STACK = 8000;
/** Values and characters rendered per payload, so a wide, deep or long one stays cheap. */
const MAX_NODES = 5000;
const MAX_CHARS = 50_000;

interface Budget {
  nodes: number;
  chars: number;
}

/** A finite number, or null: fast-json-stringify throws on NaN. */
export function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** `value` as a string of at most `max` characters. */
export function cut(value: unknown, max = MAX_STRING): string {
  const text = typeof value === 'string' ? value : textOf(value);
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** A JSON-safe rendering of a user value; see `DeadLetterView.payload`. */
export function renderValue(value: unknown): unknown {
  return render(value, 0, new Set<object>(), { nodes: MAX_NODES, chars: MAX_CHARS });
}

function render(value: unknown, depth: number, parents: Set<object>, budget: Budget): unknown {
  if (--budget.nodes < 0 || budget.chars < 0) return '[…]';
  switch (typeof value) {
    case 'string':
      budget.chars -= Math.min(value.length, MAX_STRING);
      return cut(value);
    case 'number':
      return Number.isFinite(value) ? value : `[${value}]`;
    case 'boolean':
      return value;
    case 'bigint':
      return `[BigInt ${cut(value.toString(), 100)}]`;
    case 'undefined':
      return '[undefined]';
    case 'symbol':
      return `[${cut(value.toString(), 100)}]`;
    case 'function':
      return `[Function ${cut(nameOf(value), 100) || 'anonymous'}]`;
  }
  if (value === null) return null;
  const obj = value as object;
  if (parents.has(obj)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Nested too deep]';
  try {
    parents.add(obj);
    return renderObject(obj, depth, parents, budget);
  } catch (err) {
    return `[Unreadable: ${cut(summarizeThrown(err).message, 200)}]`;
  } finally {
    parents.delete(obj);
  }
}

function renderObject(obj: object, depth: number, parents: Set<object>, budget: Budget): unknown {
  const item = (v: unknown): unknown => render(v, depth + 1, parents, budget);
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? '[Invalid Date]' : obj.toISOString();
  if (obj instanceof RegExp) return cut(String(obj), 200);
  if (obj instanceof Error) return { name: cut(obj.name, 200), message: cut(obj.message) };
  if (ArrayBuffer.isView(obj)) return `[${obj.constructor?.name ?? 'ArrayBufferView'}(${obj.byteLength} bytes)]`;
  if (obj instanceof ArrayBuffer || obj instanceof SharedArrayBuffer) return `[${obj.constructor.name}(${obj.byteLength} bytes)]`;
  if (obj instanceof Map) return { '[Map]': bounded(obj.entries(), obj.size, ([k, v]) => [item(k), item(v)]) };
  if (obj instanceof Set) return { '[Set]': bounded(obj.values(), obj.size, item) };
  if (Array.isArray(obj)) return bounded(obj.values(), obj.length, item);
  // A null prototype: a payload key named __proto__ stays a key.
  const out: Record<string, unknown> = Object.create(null);
  const keys = Object.keys(obj);
  for (const key of keys.slice(0, MAX_ITEMS)) {
    budget.chars -= Math.min(key.length, 200);
    let v: unknown;
    try {
      v = (obj as Record<string, unknown>)[key];
    } catch (err) {
      v = `[Unreadable: ${cut(summarizeThrown(err).message, 200)}]`;
      out[cut(key, 200)] = v;
      continue;
    }
    out[cut(key, 200)] = item(v);
  }
  if (keys.length > MAX_ITEMS) out['[…]'] = `${keys.length - MAX_ITEMS} more keys`;
  return out;
}

/** The first MAX_ITEMS of `items` rendered, without copying the rest. */
function bounded<T>(items: Iterator<T>, size: number, each: (item: T) => unknown): unknown[] {
  const out: unknown[] = [];
  for (let next = items.next(); !next.done && out.length < MAX_ITEMS; next = items.next()) out.push(each(next.value));
  if (size > MAX_ITEMS) out.push(`[… ${size - MAX_ITEMS} more]`);
  return out;
}

function nameOf(fn: unknown): string {
  try {
    const name = (fn as { name?: unknown }).name;
    return typeof name === 'string' ? name : '';
  } catch {
    return '';
  }
}

/** One dead letter as the admin routes return it. */
export function deadLetterView(entry: DeadLetterEntry): DeadLetterView {
  const { event, lastError } = entry;
  const view: DeadLetterView = {
    id: entry.id,
    type: cut(entry.type),
    handler: cut(entry.handler, 500),
    attempts: entry.attempts,
    timestamp: entry.timestamp,
    event: { id: event.id, priority: event.priority, correlationId: cut(event.correlationId, 500), timestamp: event.timestamp },
    payload: renderValue(entry.payload),
    lastError: { name: cut(lastError.name, 200), message: cut(lastError.message) },
    errors: entry.errors.map((e) => ({ name: cut(e.name, 200), message: cut(e.message), timedOut: e.timedOut === true, at: e.at })),
  };
  if (typeof lastError.stack === 'string') view.lastError.stack = cut(lastError.stack, MAX_STACK);
  return view;
}

/** `getHealthStatus()` with its numbers made JSON-safe. */
export function healthView(result: HealthCheckResult): HealthResponse {
  return {
    status: result.status,
    activeWorkers: finite(result.activeWorkers) as number,
    queueDepth: finite(result.queueDepth) as number,
    processingRate: finite(result.processingRate) as number,
    alerts: result.alerts.map((a) => ({ ...a, value: finite(a.value) as number, threshold: finite(a.threshold) as number })),
    checks: result.checks.map((c) => ({ ...c, value: finite(c.value) as number, threshold: finite(c.threshold) as number })),
  };
}

/** Matches the processing-time histogram's bucket lines of `metricsText()`; label values there are escaped, so a line starts with its metric. */
const BUCKET_LINE = /^bootify_events_processing_seconds_bucket\{le="([^"]*)"\} (\S+)$/gm;

/** The processing histogram's cumulative buckets, upper bounds in ms. */
export function processingBuckets(text: string): NativeEventsStats['buckets'] {
  const le: (number | null)[] = [];
  const processing: number[] = [];
  for (const m of text.matchAll(BUCKET_LINE)) {
    const bound = m[1] === '+Inf' ? null : Math.round(Number(m[1]) * 1e6) / 1e3;
    const count = Number(m[2]);
    if ((bound !== null && !Number.isFinite(bound)) || !Number.isFinite(count)) return { le: [], processing: [] };
    le.push(bound);
    processing.push(count);
  }
  return { le, processing };
}

type Latency = { [K in keyof LatencyStats]: number };
const latency = (s: LatencyStats): Latency => ({
  count: finite(s.count) as number,
  p50: finite(s.p50) as number,
  p95: finite(s.p95) as number,
  p99: finite(s.p99) as number,
  max: finite(s.max) as number,
  mean: finite(s.mean) as number,
});
const lane = (p: PriorityMetrics): PriorityMetrics => ({ queued: p.queued, dispatched: p.dispatched, completed: p.completed });
const worker = (w: WorkerInfo): WorkerInfo => ({ ...w });
const isolate = (i: IsolateInfo): IsolateInfo => ({ ...i, eventLoopUtilization: finite(i.eventLoopUtilization) as number });

/** What `GET /stats` answers, from one reading of each of the bus's figures. */
export function statsView(bus: BufferedEventBusService, admin: boolean, health: NativeEventsStats['health']): NativeEventsStats {
  const { queueMetrics: q, retryStats: r } = bus.getMetrics();
  const w = bus.getWorkerStatistics();
  let rejected = 0;
  for (const n of Object.values(q.rejected)) rejected += n ?? 0;
  return {
    at: Date.now(),
    ready: bus.isReady(),
    admin,
    totals: {
      enqueued: q.enqueued,
      processed: q.totalProcessed,
      succeeded: q.succeeded,
      failed: q.failed,
      unhandled: q.unhandled,
      handlerFailures: q.handlerFailures,
      retries: r.totalRetries,
      handledInline: q.handledInline,
      rejected,
      dropped: q.dropped,
    },
    rates: { input: finite(q.inputRate) as number, processing: finite(q.processingRate) as number },
    queue: {
      size: q.size,
      utilization: finite(q.utilization) as number,
      memoryUsage: finite(q.memoryUsage) as number,
      inFlight: q.inFlight,
      inFlightInvocations: q.inFlightInvocations,
      scheduledRetries: q.scheduledRetries,
      byPriority: { critical: lane(q.byPriority.critical), normal: lane(q.byPriority.normal), low: lane(q.byPriority.low) },
    },
    latency: { processing: latency(q.processingTime), queueWait: latency(q.queueWaitTime), eventLoopLag: latency(q.eventLoopLag) },
    buckets: processingBuckets(bus.metricsText()),
    deadLetters: {
      size: r.deadLetterQueueSize,
      deadLettered: r.deadLettered,
      evicted: r.deadLetterEvicted,
      replayed: r.replayed,
      nonRetryable: r.nonRetryable,
    },
    successRate: finite(r.successRate) as number,
    workers: {
      total: w.totalWorkers,
      active: w.activeWorkers,
      idle: w.idleWorkers,
      restarts: w.restarts,
      mainThreadDispatched: w.mainThreadDispatched,
      isolatesPulled: w.isolatesPulled,
      list: w.workers.map(worker),
    },
    isolates: w.isolates.map(isolate),
    health,
  };
}

/** The health part of `/stats`. */
export function statsHealth(result: HealthCheckResult, at: number): NonNullable<NativeEventsStats['health']> {
  const view = healthView(result);
  return { status: view.status, at, checks: view.checks, alerts: view.alerts.map((a) => ({ type: a.type, severity: a.severity, message: cut(a.message, 500) })) };
}

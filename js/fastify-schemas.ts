// JSON schemas of the Fastify routes' inputs and responses. Inputs are
// decimal strings checked by pattern, not `type: 'integer'`: that would
// depend on the application's Ajv coercion settings and let `0x10` or
// `1e3` through as numbers. The handlers parse them again (js/fastify-
// dead-letters.ts), so a permissive validator compiler changes nothing.

import type { NativeEventsErrorBody } from '../fastify';

/** The body of every error the plugin answers with. */
export function problem(error: string, message: string, code?: string): NativeEventsErrorBody {
  return code === undefined ? { error, message } : { error, message, code };
}

const str = { type: 'string' } as const;
const num = { type: ['number', 'null'] } as const;
const bool = { type: 'boolean' } as const;
const obj = (properties: Record<string, unknown>) => ({ type: 'object', properties }) as const;
const list = (items: unknown) => ({ type: 'array', items }) as const;

export const errorBody = obj({ error: str, message: str, code: str });

/** Every error status a route of the plugin may answer, beside its own 200. */
export const errorResponses = { 400: errorBody, 403: errorBody, 404: errorBody, 500: errorBody, 503: errorBody };

const check = obj({ name: str, status: str, value: num, threshold: num });
const alert = obj({ type: str, severity: str, message: str, value: num, threshold: num });

export const healthBody = obj({
  status: str,
  activeWorkers: num,
  queueDepth: num,
  processingRate: num,
  alerts: list(alert),
  checks: list(check),
});

const latency = obj({ count: num, p50: num, p95: num, p99: num, max: num, mean: num });
const lane = obj({ queued: num, dispatched: num, completed: num });
const worker = obj({ id: num, state: str, restarts: num, errors: num, eventsDispatched: num, batches: num, lastActivityMs: num });
const isolate = obj({ sinkId: num, threadId: num, state: str, deliveries: num, restarts: num, eventLoopUtilization: num });

export const statsBody = obj({
  at: num,
  ready: bool,
  admin: bool,
  totals: obj({
    enqueued: num,
    processed: num,
    succeeded: num,
    failed: num,
    unhandled: num,
    handlerFailures: num,
    retries: num,
    handledInline: num,
    rejected: num,
    dropped: num,
  }),
  rates: obj({ input: num, processing: num }),
  queue: obj({
    size: num,
    utilization: num,
    memoryUsage: num,
    inFlight: num,
    inFlightInvocations: num,
    scheduledRetries: num,
    byPriority: obj({ critical: lane, normal: lane, low: lane }),
  }),
  latency: obj({ processing: latency, queueWait: latency, eventLoopLag: latency }),
  buckets: obj({ le: list(num), processing: list(num) }),
  deadLetters: obj({ size: num, deadLettered: num, evicted: num, replayed: num, nonRetryable: num }),
  successRate: num,
  workers: obj({ total: num, active: num, idle: num, restarts: num, mainThreadDispatched: num, isolatesPulled: num, list: list(worker) }),
  isolates: list(isolate),
  health: {
    type: ['object', 'null'],
    properties: { status: str, at: num, checks: list(check), alerts: list(obj({ type: str, severity: str, message: str })) },
  },
});

const deadLetter = obj({
  id: num,
  type: str,
  handler: str,
  attempts: num,
  timestamp: num,
  event: obj({ id: str, priority: str, correlationId: str, timestamp: num }),
  // Any JSON: js/fastify-views.ts renders it so that JSON.stringify cannot fail.
  payload: {},
  lastError: obj({ name: str, message: str, stack: str }),
  errors: list(obj({ name: str, message: str, timedOut: bool, at: num })),
});

export const deadLetterList = obj({ total: num, offset: num, limit: num, entries: list(deadLetter) });

/** Limits of the dead-letter routes' inputs; the messages of a 400 come from here. */
export const INPUT_RULES = {
  id: { min: 1, max: Number.MAX_SAFE_INTEGER, pattern: '^[1-9][0-9]{0,15}$', what: 'a dead-letter id, an integer from 1 to 9007199254740991' },
  offset: { min: 0, max: 0xffff_ffff, pattern: '^(0|[1-9][0-9]{0,9})$', what: 'an integer from 0 to 4294967295' },
  limit: { min: 0, max: 1000, pattern: '^(0|[1-9][0-9]{0,3})$', what: 'an integer from 0 to 1000' },
} as const;

export type InputField = keyof typeof INPUT_RULES;

const input = (field: InputField) => ({ type: 'string', pattern: INPUT_RULES[field].pattern }) as const;

export const idParams = { type: 'object', required: ['id'], properties: { id: input('id') } } as const;

export const pageQuery = { type: 'object', properties: { offset: input('offset'), limit: input('limit') } } as const;

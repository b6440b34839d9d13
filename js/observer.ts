import type {
  Alert,
  BufferedEventConfig,
  BusErrorCode,
  EventPriority,
  EventSystemMetrics,
  HealthCheckResult,
  PriorityMetrics,
  WorkerStatistics,
} from '../index';
import { LANES } from './event-record';
import type { NativeBus } from './native';
import type { SharedRing } from './ring';

interface NativeStats {
  depth: Record<EventPriority, number>;
  inFlight: number;
  inFlightInvocations: number;
  readyRetries: [number, number, number];
  scheduledRetries: number;
  deadLetters: number;
  deadLettersEvicted: number;
  concurrency: number;
  counters: {
    dispatched: [number, number, number];
    succeeded: number;
    failed: number;
    handlerFailures: number;
    unhandled: number;
    undeliverable: number;
    retries: number;
    deadLettered: number;
    nonRetryable: number;
    replayed: number;
    workerRestarts: number;
    completed: number;
    averageProcessingMs: number;
  };
  workers: { id: number; busy: boolean; deliveries: number; batches: number; restarts: number; lastActiveMs: number }[];
}

/**
 * Turns the native counters and this thread's own (accepted, refused,
 * handled inline) into the metrics, health and worker views.
 */
export class Observer {
  readonly #config: BufferedEventConfig;
  readonly #native: NativeBus;
  readonly #ring: SharedRing;
  #accepted = 0;
  #finished = 0;
  #inline = 0;
  #inlineFailed = 0;
  #inlineUnhandled = 0;
  readonly #rejected: Partial<Record<BusErrorCode, number>> = {};
  #running = false;
  #lastRate = { at: Date.now(), completed: 0 };

  constructor(config: BufferedEventConfig, nativeBus: NativeBus, ring: SharedRing) {
    this.#config = config;
    this.#native = nativeBus;
    this.#ring = ring;
  }

  start(): void {
    this.#running = true;
    this.#lastRate = { at: Date.now(), completed: this.#stats().counters.completed };
  }

  stop(): void {
    this.#running = false;
  }

  accepted(): void {
    this.#accepted++;
  }

  finished(): void {
    this.#finished++;
  }

  finishedCount(): number {
    return this.#finished;
  }

  rejected(code: BusErrorCode): void {
    this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
  }

  handledInline(failed: boolean, unhandled: boolean): void {
    this.#inline++;
    if (failed) this.#inlineFailed++;
    if (unhandled) this.#inlineUnhandled++;
  }

  #stats(): NativeStats {
    return this.#native.stats() as NativeStats;
  }

  metrics(): EventSystemMetrics {
    const s = this.#stats();
    const c = s.counters;
    const byPriority = {} as Record<EventPriority, PriorityMetrics>;
    LANES.forEach((lane, i) => {
      byPriority[lane] = { queued: s.depth[lane], dispatched: c.dispatched[i] };
    });
    const size = s.depth.critical + s.depth.normal + s.depth.low;
    const bytesQueued = this.#ring.bytesQueued();
    const processed = c.completed + this.#inline;
    const succeeded = c.succeeded + this.#inline - this.#inlineFailed - this.#inlineUnhandled;
    const successful = succeeded + c.unhandled + this.#inlineUnhandled;
    return {
      queueMetrics: {
        size,
        utilization: size / this.#config.maxQueueSize,
        totalProcessed: processed,
        averageProcessingTime: c.averageProcessingMs,
        memoryUsage: bytesQueued / (this.#config.maxMemoryMB * 1024 * 1024),
        bytesQueued,
        byPriority,
        enqueued: this.#accepted,
        inFlight: s.inFlight,
        inFlightInvocations: s.inFlightInvocations,
        succeeded,
        failed: c.failed + this.#inlineFailed,
        handlerFailures: c.handlerFailures,
        unhandled: c.unhandled + this.#inlineUnhandled,
        handledInline: this.#inline,
        rejected: { ...this.#rejected },
      },
      retryStats: {
        totalRetries: c.retries,
        scheduledRetries: s.scheduledRetries,
        readyRetries: s.readyRetries[0] + s.readyRetries[1] + s.readyRetries[2],
        deadLetterQueueSize: s.deadLetters,
        deadLettered: c.deadLettered,
        deadLetterEvicted: s.deadLettersEvicted,
        nonRetryable: c.nonRetryable,
        replayed: c.replayed,
        successRate: processed === 0 ? 1 : successful / processed,
      },
    };
  }

  workers(): WorkerStatistics {
    const s = this.#stats();
    const workers = s.workers.map((w) => ({
      id: w.id,
      state: w.busy ? ('busy' as const) : ('idle' as const),
      eventsDispatched: w.deliveries,
      batches: w.batches,
      restarts: w.restarts,
      lastActivityMs: w.lastActiveMs,
    }));
    const active = workers.filter((w) => w.state === 'busy').length;
    return {
      totalWorkers: workers.length,
      restarts: s.counters.workerRestarts,
      activeWorkers: active,
      idleWorkers: workers.length - active,
      averageProcessingTime: s.counters.averageProcessingMs,
      totalEventsProcessed: s.counters.completed,
      workers,
    };
  }

  /**
   * `unhealthy`: the bus is not running or has no workers. `degraded`: any
   * warning (queue depth at `queueDepthWarning`, queue over 90 % full, a
   * processing rate under `processingRateMin` while events wait).
   */
  health(running: boolean): HealthCheckResult {
    const s = this.#stats();
    const now = Date.now();
    const elapsed = Math.max(now - this.#lastRate.at, 1) / 1000;
    const processingRate = (s.counters.completed - this.#lastRate.completed) / elapsed;
    this.#lastRate = { at: now, completed: s.counters.completed };
    const queueDepth = s.depth.critical + s.depth.normal + s.depth.low;
    const t = this.#config.monitoring.alertThresholds;
    const alerts: Alert[] = [];
    if (!running || !this.#running) {
      alerts.push({ type: 'not_running', severity: 'critical', message: 'the bus is not running', value: 0, threshold: 1 });
    } else if (s.workers.length === 0) {
      alerts.push({ type: 'no_workers', severity: 'critical', message: 'no native worker is running', value: 0, threshold: 1 });
    }
    if (queueDepth >= t.queueDepthWarning) {
      alerts.push({
        type: 'queue_depth',
        severity: 'warning',
        message: `${queueDepth} events queued (warning at ${t.queueDepthWarning})`,
        value: queueDepth,
        threshold: t.queueDepthWarning,
      });
    }
    const utilization = queueDepth / this.#config.maxQueueSize;
    if (utilization >= 0.9) {
      alerts.push({
        type: 'queue_utilization',
        severity: 'warning',
        message: `queue ${(utilization * 100).toFixed(0)} % full`,
        value: utilization,
        threshold: 0.9,
      });
    }
    if (queueDepth > 0 && processingRate < t.processingRateMin) {
      alerts.push({
        type: 'processing_rate',
        severity: 'warning',
        message: `processing ${processingRate.toFixed(1)} events/s with events waiting (minimum ${t.processingRateMin})`,
        value: processingRate,
        threshold: t.processingRateMin,
      });
    }
    const status = alerts.some((a) => a.severity === 'critical')
      ? 'unhealthy'
      : alerts.length > 0
        ? 'degraded'
        : 'healthy';
    return { status, activeWorkers: s.workers.length, queueDepth, processingRate, alerts };
  }
}

import type {
  Alert,
  BufferedEventConfig,
  BusErrorCode,
  EventPriority,
  EventSystemMetrics,
  HealthCheck,
  HealthCheckResult,
  LatencyStats,
  PriorityMetrics,
  TypeMetrics,
  WorkerStatistics,
} from '../index';
import { errorText } from './errors';
import { withGuideHealthNames, withGuideMetricNames, withGuideWorkerNames } from './bootify/guide-names';
import { LANES } from './event-record';
import type { IsolatePool } from './isolates/pool';
import type { Journal, NativeJournalStats } from './journal';
import type { Streams } from './streams';
import type { NativeBus } from './native';
import type { SharedRing } from './ring';

/** The native side's `stats()`, as src/binding/bus.rs builds it. */
interface NativeStats {
  depth: Record<EventPriority, number>;
  inFlight: number;
  inFlightInvocations: number;
  readyRetries: [number, number, number];
  scheduledRetries: number;
  deadLetters: number;
  deadLettersEvicted: number;
  concurrency: number;
  rates: { input: number; processing: number; windowSeconds: number };
  types: (TypeMetrics & { name: string })[];
  sinks: { id: number; deliveries: number }[];
  counters: {
    dispatched: [number, number, number];
    completedByLane: [number, number, number];
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
    processing: LatencyStats;
    queueWait: LatencyStats;
    eventLoopLag: LatencyStats;
  };
  workers: { id: number; busy: boolean; deliveries: number; batches: number; restarts: number; lastActiveMs: number }[];
  refillDispatched: number;
  pulled: number;
  journal: NativeJournalStats | null;
}

/**
 * Turns the native counters and histograms, and this thread's own counts
 * (accepted, refused, finished events), into the metrics, health and
 * worker views; and runs the monitoring timers.
 */
export class Observer {
  #config: BufferedEventConfig;
  readonly #native: NativeBus;
  readonly #ring: SharedRing;
  #accepted = 0;
  #succeeded = 0;
  #deadLettered = 0;
  /** Events that found no handler when dispatched (none registered, or removed while queued). */
  #unhandled = 0;
  /** Events whose remaining work (a retry) went to the Redis group's retry set. */
  #handedOver = 0;
  #inline = 0;
  readonly #rejected: Partial<Record<BusErrorCode, number>> = {};
  #running = false;
  #restartsSeen = 0;
  #deathsSeen = 0;
  #listenerErrors = 0;
  #timers: NodeJS.Timeout[] = [];
  #restart: (() => void) | undefined;
  /** A durable bus's journal, whose figures join the metrics and health. */
  journal: Journal | undefined;
  /** A bus on Redis, whose group's figures join the metrics and health. */
  streams: Streams | undefined;

  constructor(config: BufferedEventConfig, nativeBus: NativeBus, ring: SharedRing) {
    this.#config = config;
    this.#native = nativeBus;
    this.#ring = ring;
  }

  /**
   * Starts the `'metrics'` and `'health_check'` timers the config asks for.
   * A tick with no listener computes nothing: metrics nobody reads cost
   * nothing.
   */
  start(
    emit: (event: 'metrics' | 'health_check', value: unknown) => void,
    listened: (event: 'metrics' | 'health_check') => boolean,
    running: () => boolean,
    pool: () => IsolatePool | undefined,
  ): void {
    this.#running = true;
    const m = this.#config.monitoring;
    // A listener that throws must not take the process down from a timer
    // the application never called (BootifyJS's TS bus caught these too):
    // counted, and reported once as a process warning.
    const guarded = (event: 'metrics' | 'health_check', value: () => unknown): void => {
      if (!listened(event)) return;
      try {
        emit(event, value());
      } catch (err) {
        if (this.#listenerErrors++ === 0) {
          process.emitWarning(`a '${event}' listener of BufferedEventBusService threw: ${errorText(err)} (counted in queueMetrics.listenerErrors)`, {
            code: 'BOOTIFY_LISTENER_ERROR',
          });
        }
      }
    };
    if (m.enabled) {
      this.#timers.push(setInterval(() => guarded('metrics', () => this.metrics()), m.metricsInterval).unref());
    }
    if (m.enabled && m.healthMonitoring) {
      this.#timers.push(setInterval(() => guarded('health_check', () => this.health(running(), pool())), m.healthCheckInterval).unref());
    }
    this.#restart = () => this.start(emit, listened, running, pool);
  }

  /** Takes a new configuration; running timers restart with its intervals. */
  reconfigure(config: BufferedEventConfig): void {
    this.#config = config;
    if (!this.#running) return;
    this.#clearTimers();
    this.#restart?.();
  }

  stop(): void {
    this.#running = false;
    this.#clearTimers();
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  accepted(): void {
    this.#accepted++;
  }

  /** An event's work ended; `deadLettered` when a handler of it gave up. */
  finished(deadLettered: boolean): void {
    if (deadLettered) this.#deadLettered++;
    else this.#succeeded++;
  }

  /** An event's work ended without any handler running it: neither a success nor a failure. */
  unhandled(): void {
    this.#unhandled++;
  }

  /** An event's remaining work went to the group (a retry any process may run): its outcome is decided there. */
  handedOver(): void {
    this.#handedOver++;
  }

  /** Events whose work ended here, however it ended. */
  finishedCount(): number {
    return this.#succeeded + this.#deadLettered + this.#unhandled + this.#handedOver;
  }

  rejected(code: BusErrorCode): void {
    this.#rejected[code] = (this.#rejected[code] ?? 0) + 1;
  }

  handledInline(failed: boolean): void {
    this.#inline++;
    this.finished(failed);
  }

  /** `withTypes`: include the per-type counters (only metrics() shows them). */
  #stats(withTypes = false): NativeStats {
    this.#ring.publishTails();
    return JSON.parse(this.#native.stats(withTypes)) as NativeStats;
  }

  metrics(): EventSystemMetrics {
    const s = this.#stats(true);
    const c = s.counters;
    const byPriority = {} as Record<EventPriority, PriorityMetrics>;
    LANES.forEach((lane, i) => {
      byPriority[lane] = { queued: s.depth[lane], dispatched: c.dispatched[i], completed: c.completedByLane[i] };
    });
    const byType: Record<string, TypeMetrics> = {};
    for (const { name, ...counts } of s.types) byType[name] = counts;
    const size = s.depth.critical + s.depth.normal + s.depth.low;
    const bytesQueued = this.#ring.bytesQueued();
    const processed = this.#succeeded + this.#deadLettered;
    const metrics = {
      queueMetrics: {
        size,
        utilization: size / this.#config.maxQueueSize,
        totalProcessed: processed,
        averageProcessingTime: c.processing.mean,
        memoryUsage: bytesQueued / (this.#config.maxMemoryMB * 1024 * 1024),
        bytesQueued,
        byPriority,
        byType,
        enqueued: this.#accepted,
        inFlight: s.inFlight,
        inFlightInvocations: s.inFlightInvocations,
        scheduledRetries: s.scheduledRetries,
        succeeded: this.#succeeded,
        failed: this.#deadLettered,
        unhandled: this.#unhandled,
        handedOver: this.#handedOver,
        handlerFailures: c.handlerFailures,
        deliveries: { dispatched: c.dispatched[0] + c.dispatched[1] + c.dispatched[2], succeeded: c.succeeded, failed: c.failed, unhandled: c.unhandled },
        handledInline: this.#inline,
        rejected: { ...this.#rejected },
        dropped: c.undeliverable,
        processingTime: c.processing,
        queueWaitTime: c.queueWait,
        eventLoopLag: c.eventLoopLag,
        listenerErrors: this.#listenerErrors,
        inputRate: s.rates.input,
        processingRate: s.rates.processing,
      },
      retryStats: {
        totalRetries: c.retries,
        scheduledRetries: s.scheduledRetries,
        readyRetries: s.readyRetries[0] + s.readyRetries[1] + s.readyRetries[2],
        // On Redis the dead letters are the group's.
        deadLetterQueueSize: this.streams?.isOpen ? this.streams.metrics().deadLetters : s.deadLetters,
        deadLettered: c.deadLettered,
        deadLetterEvicted: s.deadLettersEvicted,
        nonRetryable: c.nonRetryable,
        replayed: c.replayed,
        successRate: processed === 0 ? 1 : this.#succeeded / processed,
      },
      ...(this.journal ? { journal: this.journal.metrics(s.journal) } : {}),
      ...(this.streams ? { backend: this.streams.metrics() } : {}),
    };
    return withGuideMetricNames(metrics, this.#config, { running: s.workers.length, panics: c.workerRestarts });
  }

  /** The native metrics' Prometheus text plus what only this thread counts. */
  metricsText(): string {
    const m = this.metrics().queueMetrics;
    const lines = [this.#native.metricsText().trimEnd()];
    const add = (name: string, type: string, help: string, samples: [string, number][]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(labels ? `${name}{${labels}} ${value}` : `${name} ${value}`);
    };
    add('bootify_events_enqueued_total', 'counter', 'Events accepted by emitEvent or emit.', [['', m.enqueued]]);
    add('bootify_events_rejected_total', 'counter', 'Emissions refused, by error code.', Object.entries(m.rejected).map(([code, n]) => [`code="${code}"`, n ?? 0]));
    add('bootify_events_finished_total', 'counter', 'Events whose work ended, by result.', [['result="succeeded"', m.succeeded], ['result="dead_lettered"', m.failed], ['result="unhandled"', m.unhandled]]);
    add('bootify_events_handled_inline_total', 'counter', 'Events handled on the main thread because the queue was full or no worker ran.', [['', m.handledInline]]);
    add('bootify_events_queued_bytes', 'gauge', 'Estimated payload bytes waiting in the ring.', [['', m.bytesQueued]]);
    const j = this.journal?.metrics(null);
    if (j) {
      add('bootify_events_journal_recovered_total', 'counter', 'Unfinished events recovered from the journal (each may run a second time).', [['', j.recovered]]);
      add('bootify_events_journal_recovered_waiting', 'gauge', 'Recovered events waiting for a handler of their type.', [['', j.recoveredWaiting]]);
      add('bootify_events_journal_truncated_total', 'counter', 'Torn journal tails cut off at recovery.', [['', j.truncated]]);
      add('bootify_events_journal_corruptions_total', 'counter', 'Damaged journal records skipped at recovery.', [['', j.corruptions.length]]);
      add('bootify_events_journal_undecodable_total', 'counter', 'Recovered events that could not be decoded (dead-lettered).', [['', j.undecodable]]);
      add('bootify_events_journal_full_total', 'counter', 'Emissions the full journal refused or ran inline.', [['result="rejected"', j.rejectedFull], ['result="inline"', j.inlineFull]]);
    }
    const b = this.streams?.metrics();
    if (b) {
      const q = b.group.queued;
      add('bootify_events_group_queued', 'gauge', 'Events in the Redis group by priority (the whole group, being handled included).', [
        ['priority="critical"', q.critical],
        ['priority="normal"', q.normal],
        ['priority="low"', q.low],
      ]);
      add('bootify_events_group_pending', 'gauge', 'Events of the group taken by a process and not finished.', [['', b.group.pending]]);
      add('bootify_events_group_consumers', 'gauge', 'Processes that have read from the group.', [['', b.group.consumers]]);
      add('bootify_events_group_unhandled', 'gauge', 'Events waiting in the group for a type no process reads.', b.group.unhandledTypes.map((u) => [`type=${JSON.stringify(u.type)}`, u.waiting]));
      add('bootify_events_group_retrying', 'gauge', "Failed handlers' retries waiting in the group's retry set.", [['', b.group.retrying]]);
      add('bootify_events_redis_connected', 'gauge', 'Whether Redis answers (1) or not (0).', [['', b.connected ? 1 : 0]]);
      add('bootify_events_redis_entries_total', 'counter', "This process's traffic with the group.", [
        ['op="emitted"', b.emitted],
        ['op="taken"', b.taken],
        ['op="reclaimed"', b.reclaimed],
        ['op="settled"', b.settled],
        ['op="retried"', b.retried],
        ['op="promoted"', b.promoted],
      ]);
      add('bootify_events_redis_retries_unrunnable_total', 'counter', 'Retries of the group that could not run: their data was gone when due (lost), or no handler here had their key (dead-lettered).', [
        ['cause="gone"', b.retriesGone],
        ['cause="unknown_handler"', b.unknownHandlers],
      ]);
      add('bootify_events_redis_errors_total', 'counter', 'Redis commands that failed.', [['', b.errors]]);
    }
    return `${lines.join('\n')}\n`;
  }

  workers(pool?: IsolatePool): WorkerStatistics {
    const s = this.#stats();
    const isolates = pool ? pool.info(new Map(s.sinks.map((k) => [k.id, k.deliveries]))) : [];
    const workers = s.workers.map((w) => ({
      id: w.id,
      state: w.busy ? ('busy' as const) : ('idle' as const),
      eventsDispatched: w.deliveries,
      batches: w.batches,
      restarts: w.restarts,
      errors: w.restarts,
      lastActivityMs: w.lastActiveMs,
    }));
    const active = workers.filter((w) => w.state === 'busy').length;
    return withGuideWorkerNames({
      totalWorkers: workers.length,
      activeWorkers: active,
      idleWorkers: workers.length - active,
      restarts: s.counters.workerRestarts,
      averageProcessingTime: s.counters.processing.mean,
      totalEventsProcessed: s.counters.completed,
      mainThreadDispatched: s.refillDispatched,
      isolatesPulled: s.pulled,
      workers,
      isolates,
    });
  }

  /**
   * Compares measured values with the thresholds; see README ("Health")
   * for the rules. Maxima (queue wait, event-loop lag, worker panics) are
   * those since the previous health check.
   */
  health(running: boolean, pool?: IsolatePool): HealthCheckResult {
    const s = this.#stats();
    const [queueWaitMax, lagMax] = this.#native.takeRecentMaxima();
    const restarts = s.counters.workerRestarts - this.#restartsSeen;
    this.#restartsSeen = s.counters.workerRestarts;
    const t = this.#config.monitoring.alertThresholds;
    const queueDepth = s.depth.critical + s.depth.normal + s.depth.low;
    const rate = s.rates.processing;
    const checks: HealthCheck[] = [];
    const alerts: Alert[] = [];
    const check = (name: string, failed: boolean, severity: Alert['severity'], value: number, threshold: number, message: string): void => {
      checks.push({ name, status: failed ? (severity === 'critical' ? 'fail' : 'warn') : 'pass', value, threshold });
      if (failed) alerts.push({ type: name, severity, message, value, threshold });
    };
    const live = running && this.#running;
    check('running', !live, 'critical', live ? 1 : 0, 1, 'the bus is not running');
    check('workers', live && s.workers.length === 0, 'critical', s.workers.length, 1, 'no native worker is running');
    check('failed_workers', restarts >= t.maxFailedWorkers, 'critical', restarts, t.maxFailedWorkers, `${restarts} native worker panic(s) since the last check`);
    check('queue_depth', queueDepth >= t.queueDepthWarning, 'warning', queueDepth, t.queueDepthWarning, `${queueDepth} events queued`);
    const utilization = queueDepth / this.#config.maxQueueSize;
    check('queue_utilization', utilization >= 0.9, 'warning', utilization, 0.9, `queue ${(utilization * 100).toFixed(0)} % full`);
    check('processing_rate', queueDepth > 0 && rate < t.processingRateMin, 'warning', rate, t.processingRateMin, `processing ${rate.toFixed(1)} events/s with events waiting`);
    const letters = this.streams?.isOpen ? this.streams.metrics().deadLetters : s.deadLetters;
    check('dead_letters', letters >= t.dlqSizeAlert, 'warning', letters, t.dlqSizeAlert, `${letters} events in the dead-letter queue`);
    const maxLatency = this.#config.performanceLimits.maxQueueLatency;
    check('queue_latency', queueWaitMax > maxLatency, 'warning', queueWaitMax, maxLatency, `an event waited ${queueWaitMax.toFixed(1)} ms in the queue`);
    check('event_loop_lag', lagMax > t.eventLoopLagMs, 'warning', lagMax, t.eventLoopLagMs, `the main thread took ${lagMax.toFixed(1)} ms to take a batch from the workers`);
    if (this.journal && s.journal) {
      // Near the bound: less than a tenth of it left for accepted events.
      const { room, maxDiskBytes, failure } = s.journal;
      const left = room / maxDiskBytes;
      const why = failure ?? `the journal has ${(left * 100).toFixed(1)} % of journal.maxDiskMB left for new events`;
      check('journal', failure !== null || left < 0.1, 'critical', left, 0.1, why);
    }
    if (this.streams) {
      const down = this.streams.down;
      check('backend', down !== undefined, 'critical', down === undefined ? 1 : 0, 1, `Redis is unreachable: ${down ?? ''}`);
    }
    if (pool?.started) {
      const up = pool.info(new Map()).filter((i) => i.state === 'running').length;
      const want = this.#config.workerIsolates;
      check('isolates', up < want, 'warning', up, want, `${up} of ${want} worker isolates running`);
      const deaths = pool.deaths - this.#deathsSeen;
      this.#deathsSeen = pool.deaths;
      check('isolate_deaths', deaths > 0, 'warning', deaths, 1, `${deaths} worker isolate(s) died since the last check`);
    }
    const status = alerts.some((a) => a.severity === 'critical') ? 'unhealthy' : alerts.length > 0 ? 'degraded' : 'healthy';
    return withGuideHealthNames({ status, activeWorkers: s.workers.length, queueDepth, processingRate: rate, alerts, checks });
  }
}

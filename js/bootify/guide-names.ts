import type { BufferedEventConfig, EventSystemMetrics, HealthCheckResult, WorkerStatistics } from '../../index';

/**
 * The names BootifyJS's published guide and API reference use for metrics,
 * worker statistics and health, beside the seed's canonical ones, so code
 * written from either runs. Non-enumerable, so a serialised snapshot (a
 * metrics route, a log line) carries each number once.
 */
function hidden<T extends object, Full extends T>(target: T, names: Omit<Full, keyof T>): Full {
  for (const [key, value] of Object.entries(names)) {
    Object.defineProperty(target, key, { value, enumerable: false, writable: false, configurable: true });
  }
  return target as Full;
}

type MetricNames = 'queue' | 'processing' | 'workers' | 'queueSize' | 'eventsProcessed' | 'averageProcessingTime';

export function withGuideMetricNames(m: Omit<EventSystemMetrics, MetricNames>, config: BufferedEventConfig, workers: { running: number; panics: number }): EventSystemMetrics {
  const q = m.queueMetrics;
  const refused = Object.values(q.rejected).reduce<number>((sum, n) => sum + (n ?? 0), 0);
  return hidden<Omit<EventSystemMetrics, MetricNames>, EventSystemMetrics>(m, {
    queue: { size: q.size, utilization: q.utilization, isFull: q.size >= config.maxQueueSize || q.memoryUsage >= 1 },
    processing: {
      totalProcessed: q.totalProcessed,
      totalDropped: refused + q.dropped,
      averageLatency: q.queueWaitTime.mean + q.processingTime.mean,
      rate: q.processingRate,
    },
    workers: { active: workers.running, failed: workers.panics },
    queueSize: q.size,
    eventsProcessed: q.totalProcessed,
    averageProcessingTime: q.averageProcessingTime,
  });
}

export function withGuideWorkerNames(w: Omit<WorkerStatistics, 'failedWorkers' | 'workerStatuses'>): WorkerStatistics {
  return hidden<typeof w, WorkerStatistics>(w, { failedWorkers: w.restarts, workerStatuses: w.workers });
}

export function withGuideHealthNames(h: Omit<HealthCheckResult, 'issues'>): HealthCheckResult {
  return hidden<typeof h, HealthCheckResult>(h, { issues: h.alerts.map((a) => a.message) });
}

import assert from 'node:assert/strict';
import { BufferedEventBusService, type BufferedEventConfigInput } from '..';

/** Polls `condition` until it holds; generous timeouts because CI machines are slow. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Fills a one-place window (`concurrency: 1`) with a handler that waits;
 * everything emitted afterwards queues. Returns the function that lets it
 * finish.
 */
export async function blockWindow(bus: BufferedEventBusService): Promise<() => void> {
  const gate = deferred();
  bus.registerHandler('blocker', () => gate.promise);
  await bus.emitEvent('blocker', {});
  await waitFor(() => bus.getMetrics().queueMetrics.inFlight === 1, 'the blocker to hold the window');
  return gate.resolve;
}

/** A started bus that the test shuts down through `t.after`. */
export async function startedBus(
  t: { after(fn: () => unknown): void },
  config: BufferedEventConfigInput = {},
): Promise<BufferedEventBusService> {
  const bus = new BufferedEventBusService({ workerCount: 2, ...config });
  t.after(() => bus.shutdown({ timeout: 1000 }));
  await bus.initialize();
  return bus;
}

/** Asserts that `fn` throws or rejects with a `BusError` of `code`. */
export async function rejectsWithCode(fn: () => unknown, code: string, mentions?: string): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, `expected an error with code ${code}`);
  assert.equal((caught as { code?: string }).code, code, (caught as Error).message);
  if (mentions) assert.match((caught as Error).message, new RegExp(mentions));
}

/** What the isolate fixture handlers (fixtures/isolate-handlers.ts) report. */
export interface IsolateReport {
  label?: string;
  n?: number;
  threadId: number;
  at: number;
  retryCount: number;
  isDate?: boolean;
  aborted?: boolean;
  started?: boolean;
}

/** Collects the isolate fixture handlers' reports until the test ends. */
export function listenToIsolates(t: { after(fn: () => unknown): void }): IsolateReport[] {
  const reports: IsolateReport[] = [];
  const channel = new BroadcastChannel('isolate-spec');
  channel.onmessage = (m) => reports.push((m as unknown as { data: IsolateReport }).data);
  t.after(() => channel.close());
  return reports;
}

import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { IsolateInfo } from '../../index';
import { type FailureRecord, OUTCOME } from '../acks';
import { BusError } from '../errors';
import { type DeliveryKey, IsolateStatus, type StartedDelivery } from './status';
import type { NativeBus } from '../native';

/** A handler that runs in worker isolates, as they load it. */
export interface WorkerHandlerSpec {
  id: number;
  type: string;
  name: string;
  modulePath: string;
  exportName: string;
}

/** An event as worker isolates receive it, serialised in the arena. */
export interface IsolateEnvelope {
  id: string;
  type: string;
  payload: unknown;
  lane: number;
  correlationId: string;
  timestamp: number;
}

/** What an isolate is started with (its `workerData`). */
export interface IsolateSetup {
  busId: number;
  arena: SharedArrayBuffer;
  /** Its `IsolateStatus` (js/isolate-status.ts). */
  status: SharedArrayBuffer;
  concurrency: number;
  handlerTimeout: number;
  handlers: WorkerHandlerSpec[];
}

/** What the pool needs from its bus. */
export interface PoolHost {
  readonly native: NativeBus;
  handlers(): WorkerHandlerSpec[];
  handlerName(id: number): string;
  /** `reliabilityLimits.workerRestartDelay`, read at each restart. */
  restartDelay(): number;
  onError(err: BusError): void;
}

const ISOLATE_SCRIPT = path.join(__dirname, 'worker.js');
/**
 * How long past `handlerTimeout` a delivery may run before its isolate is
 * terminated: the isolate times deliveries out itself, so one still open
 * this late means its event loop is stuck (synchronous code that never
 * returns).
 */
export const HANG_GRACE_MS = 1000;
/** An isolate that lived this long before dying restarts without backing off. */
const STABLE_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

interface Member {
  worker: Worker;
  status: IsolateStatus;
  sinkId?: number;
  threadId?: number;
  restarts: number;
  /** Deaths in a row, each soon after its start (drives the backoff). */
  streak: number;
  spawnedAt: number;
  /** Why it failed, from its `'error'` event (an escaped throw, out of memory). */
  error?: Error;
  /** Set when the pool terminates it for a delivery stuck past its timeout. */
  hung?: StartedDelivery[];
}

interface Restarting {
  restarts: number;
  streak: number;
  timer: NodeJS.Timeout;
}

/**
 * The worker isolates of one bus. Started on the first event of a type
 * handled in isolates. An isolate that dies (a crash, `process.exit()`,
 * out of memory, or terminated for a handler stuck past its timeout) is
 * charged for the deliveries it died running, which are retried or
 * dead-lettered like any failure; its other deliveries go back to the
 * queue uncharged; it is replaced after `workerRestartDelay`, doubling
 * while replacements keep dying. Isolates are unref'd: the bus keeps the
 * process alive while it has work.
 */
export class IsolatePool {
  #setup: Omit<IsolateSetup, 'handlers' | 'status'>;
  readonly #size: number;
  readonly #host: PoolHost;
  readonly #members: (Member | Restarting)[] = [];
  #watchdog: NodeJS.Timeout | undefined;
  #deaths = 0;
  #started = false;
  #stopping = false;

  constructor(setup: Omit<IsolateSetup, 'handlers' | 'status'>, size: number, host: PoolHost) {
    this.#setup = setup;
    this.#size = size;
    this.#host = host;
  }

  get started(): boolean {
    return this.#started;
  }

  /** Isolates that died so far. */
  get deaths(): number {
    return this.#deaths;
  }

  ensureStarted(): void {
    if (this.#started || this.#stopping) return;
    this.#started = true;
    for (let i = 0; i < this.#size; i++) this.#members.push(this.#spawn(0, 0));
    this.#armWatchdog();
  }

  addHandler(spec: WorkerHandlerSpec): void {
    for (const m of this.#running()) m.worker.postMessage({ kind: 'add-handler', spec });
  }

  /** Deliveries started from now on, in running and future isolates, use `ms`. */
  setHandlerTimeout(ms: number): void {
    this.#setup = { ...this.#setup, handlerTimeout: ms };
    for (const m of this.#running()) m.worker.postMessage({ kind: 'set-timeout', ms });
    this.#armWatchdog();
  }

  removeHandler(id: number): void {
    for (const m of this.#running()) m.worker.postMessage({ kind: 'remove-handler', id });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#watchdog);
    for (const m of this.#members) if (!('worker' in m)) clearTimeout(m.timer);
    await Promise.all(this.#running().map((m) => m.worker.terminate()));
    this.#members.length = 0;
  }

  info(deliveriesBySink: Map<number, number>): IsolateInfo[] {
    return this.#members.map((m) => {
      if (!('worker' in m)) {
        return { sinkId: 0, threadId: 0, state: 'restarting', deliveries: 0, restarts: m.restarts, eventLoopUtilization: 0 };
      }
      return {
        sinkId: m.sinkId ?? 0,
        threadId: m.threadId ?? m.worker.threadId,
        state: m.sinkId === undefined ? 'starting' : 'running',
        deliveries: m.sinkId === undefined ? 0 : (deliveriesBySink.get(m.sinkId) ?? 0),
        restarts: m.restarts,
        eventLoopUtilization: m.worker.performance.eventLoopUtilization().utilization,
      };
    });
  }

  #running(): Member[] {
    return this.#members.filter((m): m is Member => 'worker' in m);
  }

  #spawn(restarts: number, streak: number): Member {
    const status = IsolateStatus.create(this.#setup.concurrency);
    const setup: IsolateSetup = { ...this.#setup, status: status.buffer, handlers: this.#host.handlers() };
    const worker = new Worker(ISOLATE_SCRIPT, { workerData: setup });
    const member: Member = { worker, status, restarts, streak, spawnedAt: Date.now() };
    worker.on('message', (m: { kind: string; sinkId?: number; threadId?: number; spec?: WorkerHandlerSpec; message?: string }) => {
      if (m.kind === 'attached') {
        member.sinkId = m.sinkId;
        member.threadId = m.threadId;
      } else if (m.kind === 'load-error' && m.spec) {
        this.#host.onError(
          new BusError('HANDLER_MODULE_ERROR', `worker handler ${m.spec.name} failed to load in an isolate: ${m.message}`, {
            modulePath: m.spec.modulePath,
          }),
        );
      }
    });
    worker.on('error', (err) => {
      member.error = err;
    });
    worker.on('exit', (code) => this.#died(member, code));
    // After the listeners, which would ref the worker's port again.
    worker.unref();
    return member;
  }

  #died(member: Member, code: number): void {
    const i = this.#members.indexOf(member);
    const started = member.status.started();
    // Finished, but the acknowledgement died with it: handled, or failed
    // with an error that was lost. Either way it must not run again.
    const succeeded = started.filter((d) => d.outcome === OUTCOME.OK).flatMap((d) => [d.slot, d.delivery]);
    const lost = started.filter((d) => d.outcome === OUTCOME.FAILED);
    if (this.#stopping || i < 0) {
      // Terminated by stop(): what it was running is reported by the shutdown.
      if (member.sinkId !== undefined) this.#host.native.detachIsolate(member.sinkId, lost.map((d) => this.#failure(d, 'a handler failed; its error was lost when the isolate stopped', false)), succeeded);
      return;
    }
    this.#deaths++;
    const reason = this.#reason(member, code);
    const culprits = this.#culprits(member, started.filter((d) => d.outcome < 0));
    let charged = 0;
    let requeued = 0;
    if (member.sinkId !== undefined) {
      const failures = [
        ...culprits.map((d) => this.#failure(d, `the worker isolate running this event died: ${reason}`, member.hung !== undefined)),
        ...lost.map((d) => this.#failure(d, `a handler failed; its error was lost when the isolate died (${reason})`, false)),
      ];
      ({ charged, requeued } = this.#host.native.detachIsolate(member.sinkId, failures, succeeded));
    }
    const stable = Date.now() - member.spawnedAt >= STABLE_MS;
    const streak = stable ? 1 : member.streak + 1;
    const delay = Math.min(this.#host.restartDelay() * 2 ** Math.min(streak - 1, 16), MAX_RESTART_DELAY_MS);
    this.#host.onError(
      new BusError('ISOLATE_DIED', `a worker isolate died (${reason}); ${charged} deliveries charged, ${requeued} requeued; restarting in ${delay} ms`, {
        threadId: member.threadId ?? member.worker.threadId,
        exitCode: code,
        charged,
        requeued,
        restartInMs: delay,
      }),
    );
    const slot: Restarting = {
      restarts: member.restarts + 1,
      streak,
      timer: setTimeout(() => {
        const at = this.#members.indexOf(slot);
        if (at >= 0 && !this.#stopping) this.#members[at] = this.#spawn(slot.restarts, slot.streak);
      }, delay).unref(),
    };
    this.#members[i] = slot;
  }

  #reason(member: Member, code: number): string {
    if (member.hung) {
      return `a handler ran past handlerTimeout (${this.#setup.handlerTimeout} ms) + ${HANG_GRACE_MS} ms without returning; the isolate was terminated`;
    }
    const err = member.error as (Error & { code?: unknown }) | undefined;
    if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') return 'it ran out of memory';
    if (err) return `uncaught ${err.name}: ${err.message}`;
    return `it exited with code ${code} (process.exit() in a handler?)`;
  }

  /**
   * Which of its deliveries killed it: the one it blamed as it died (its
   * code was running then), else the one stuck in synchronous code or past
   * its timeout, else the only one it had started. With several started
   * and no way to tell, all of them: each is retried, so an innocent one
   * costs an attempt, never the event.
   */
  #culprits(member: Member, running: StartedDelivery[]): DeliveryKey[] {
    if (member.hung) return member.hung;
    const s = member.status;
    const blamed = s.blamed() ?? s.runningNow();
    if (blamed) return [blamed];
    const timeout = this.#setup.handlerTimeout;
    const overdue = timeout > 0 ? running.filter((d) => Date.now() - d.startedAt > timeout) : [];
    return overdue.length > 0 ? overdue : running;
  }

  #failure(d: DeliveryKey, message: string, timedOut: boolean): FailureRecord {
    const handlerName = d.delivery === 0 ? 'worker isolate' : this.#host.handlerName(d.delivery);
    return { slot: d.slot, delivery: d.delivery, handler: d.delivery, handlerName, message, name: 'IsolateDiedError', retryable: true, timedOut, at: Date.now() };
  }

  /** Terminates isolates with a delivery open past `handlerTimeout` + grace. */
  #armWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    const timeout = this.#setup.handlerTimeout;
    if (!this.#started || this.#stopping || timeout <= 0) return;
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      for (const m of this.#running()) {
        if (m.hung || m.sinkId === undefined) continue;
        const stuck = m.status.started().filter((d) => d.outcome < 0 && now - d.startedAt > timeout + HANG_GRACE_MS);
        if (stuck.length === 0) continue;
        const running = m.status.runningNow();
        m.hung = running && !stuck.some((d) => d.slot === running.slot && d.delivery === running.delivery) ? [...stuck, running] : stuck;
        void m.worker.terminate();
      }
    }, Math.min(timeout, HANG_GRACE_MS) / 2).unref();
  }
}

/**
 * Loads `modulePath` in a short-lived isolate and checks that `exportName`
 * is a function, so a module that cannot load fails registration with
 * `HANDLER_MODULE_ERROR` instead of failing every event later.
 */
export function probeWorkerHandler(modulePath: string, exportName: string): Promise<void> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    try {
      const mod = require(workerData.modulePath);
      const fn = workerData.exportName === 'default' ? (typeof mod === 'function' ? mod : mod && mod.default) : mod && mod[workerData.exportName];
      parentPort.postMessage(typeof fn === 'function' ? { ok: true } : { ok: false, message: "export '" + workerData.exportName + "' is not a function" });
    } catch (err) {
      parentPort.postMessage({ ok: false, message: String(err && err.message || err) });
    }`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { modulePath, exportName } });
    let settled = false;
    const fail = (message: string) =>
      reject(new BusError('HANDLER_MODULE_ERROR', `worker handler module ${modulePath} cannot be used: ${message}`, { modulePath }));
    worker.once('message', (m: { ok: boolean; message?: string }) => {
      settled = true;
      void worker.terminate();
      if (m.ok) resolve();
      else fail(m.message ?? 'unknown error');
    });
    worker.once('error', (err) => {
      if (!settled) fail(err.message);
    });
    worker.once('exit', () => {
      if (!settled) fail('the module exited the isolate while loading');
    });
  });
}

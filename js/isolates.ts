import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { IsolateInfo } from '../index';
import { BusError } from './errors';
import type { NativeBus } from './native';

/** A handler that runs in worker isolates, as they load it. */
export interface WorkerHandlerSpec {
  id: number;
  type: string;
  name: string;
  modulePath: string;
  exportName: string;
}

/** What an isolate is started with (its `workerData`). */
export interface IsolateSetup {
  busId: number;
  arena: SharedArrayBuffer;
  concurrency: number;
  handlerTimeout: number;
  handlers: WorkerHandlerSpec[];
}

const ISOLATE_SCRIPT = path.join(__dirname, 'isolate-worker.js');

interface Member {
  worker: Worker;
  sinkId?: number;
  threadId?: number;
  restarts: number;
}

/**
 * The worker isolates of one bus. Started on the first event of a type
 * handled in isolates; an isolate that exits (a crash, `process.exit()`)
 * is detached, its unfinished deliveries go back to the queue, and it is
 * replaced. Isolates are unref'd: the bus keeps the process alive while it
 * has work.
 */
export class IsolatePool {
  #setup: Omit<IsolateSetup, 'handlers'>;
  readonly #size: number;
  readonly #native: NativeBus;
  readonly #handlers: () => WorkerHandlerSpec[];
  readonly #onError: (err: BusError) => void;
  readonly #members: Member[] = [];
  #started = false;
  #stopping = false;

  constructor(
    setup: Omit<IsolateSetup, 'handlers'>,
    size: number,
    nativeBus: NativeBus,
    handlers: () => WorkerHandlerSpec[],
    onError: (err: BusError) => void,
  ) {
    this.#setup = setup;
    this.#size = size;
    this.#native = nativeBus;
    this.#handlers = handlers;
    this.#onError = onError;
  }

  get started(): boolean {
    return this.#started;
  }

  ensureStarted(): void {
    if (this.#started || this.#stopping) return;
    this.#started = true;
    for (let i = 0; i < this.#size; i++) this.#members.push(this.#spawn(0));
  }

  addHandler(spec: WorkerHandlerSpec): void {
    for (const m of this.#members) m.worker.postMessage({ kind: 'add-handler', spec });
  }

  /** Deliveries started from now on, in running and future isolates, use `ms`. */
  setHandlerTimeout(ms: number): void {
    this.#setup = { ...this.#setup, handlerTimeout: ms };
    for (const m of this.#members) m.worker.postMessage({ kind: 'set-timeout', ms });
  }

  removeHandler(id: number): void {
    for (const m of this.#members) m.worker.postMessage({ kind: 'remove-handler', id });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#members.map((m) => m.worker.terminate()));
    this.#members.length = 0;
  }

  info(deliveriesBySink: Map<number, number>): IsolateInfo[] {
    return this.#members.map((m) => ({
      sinkId: m.sinkId ?? 0,
      threadId: m.threadId ?? m.worker.threadId,
      state: m.sinkId === undefined ? 'starting' : 'running',
      deliveries: m.sinkId === undefined ? 0 : (deliveriesBySink.get(m.sinkId) ?? 0),
      restarts: m.restarts,
      eventLoopUtilization: m.worker.performance.eventLoopUtilization().utilization,
    }));
  }

  #spawn(restarts: number): Member {
    const setup: IsolateSetup = { ...this.#setup, handlers: this.#handlers() };
    const worker = new Worker(ISOLATE_SCRIPT, { workerData: setup });
    const member: Member = { worker, restarts };
    worker.on('message', (m: { kind: string; sinkId?: number; threadId?: number; spec?: WorkerHandlerSpec; message?: string }) => {
      if (m.kind === 'attached') {
        member.sinkId = m.sinkId;
        member.threadId = m.threadId;
      } else if (m.kind === 'load-error' && m.spec) {
        this.#onError(
          new BusError('HANDLER_MODULE_ERROR', `worker handler ${m.spec.name} failed to load in an isolate: ${m.message}`, {
            modulePath: m.spec.modulePath,
          }),
        );
      }
    });
    worker.on('error', (err) => {
      this.#onError(new BusError('WORKER_PANIC', `a worker isolate failed: ${err.message}`, { threadId: worker.threadId }));
    });
    worker.on('exit', () => {
      // Its unfinished deliveries go back to the queue for the others.
      if (member.sinkId !== undefined) this.#native.detachIsolate(member.sinkId);
      const i = this.#members.indexOf(member);
      if (i < 0 || this.#stopping) return;
      this.#members[i] = this.#spawn(member.restarts + 1);
    });
    // After the listeners, which would ref the worker's port again.
    worker.unref();
    return member;
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

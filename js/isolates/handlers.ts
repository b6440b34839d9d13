// The main thread's side of handlers that run in worker isolates: their
// registration, the arena events are serialised into, and the pool.
import path from 'node:path';
import { serialize } from 'node:v8';
import type { BufferedEventConfig, WorkerHandlerOptions } from '../../index';
import { Arena, ENCODING } from '../arena';
import { BusError, errorText } from '../errors';
import { checkType, describe, type HandlerRegistry } from '../handlers';
import type { NativeBus } from '../native';
import { isFlatPayload } from '../payload';
import { type IsolateEnvelope, IsolatePool, probeWorkerHandler, type WorkerHandlerSpec } from './pool';

/** An event serialised for isolates. */
export interface Serialised {
  /** ENCODING.JSON or ENCODING.CLONE: the arena block's first byte. */
  tag: number;
  bytes: Uint8Array;
}

/** What the worker handlers need from their bus. */
export interface WorkerHandlersHost {
  readonly native: NativeBus;
  readonly registry: HandlerRegistry;
  config(): BufferedEventConfig;
  onError(err: BusError): void;
}

export class WorkerHandlers {
  readonly #host: WorkerHandlersHost;
  /** Serialised events of isolate-handled types; made on the first worker handler. */
  #arena: Arena | undefined;
  #pool: IsolatePool | undefined;
  #specs: WorkerHandlerSpec[] = [];

  constructor(host: WorkerHandlersHost) {
    this.#host = host;
  }

  get pool(): IsolatePool | undefined {
    return this.#pool;
  }

  async register(eventType: string, modulePath: string, options: WorkerHandlerOptions): Promise<() => void> {
    if (options === null || typeof options !== 'object') {
      throw new BusError('INVALID_ARGUMENT', `options must be an object like { exportName: 'handle' }, got ${describe(options)}`, { field: 'options' });
    }
    checkType(eventType);
    if (typeof modulePath !== 'string' || modulePath.length === 0) {
      throw new BusError('INVALID_ARGUMENT', `modulePath must be a non-empty string, got ${describe(modulePath)}`, { field: 'modulePath' });
    }
    const exportName = options.exportName ?? 'default';
    if (typeof exportName !== 'string' || exportName.length === 0) {
      throw new BusError('INVALID_ARGUMENT', `exportName must be a non-empty string, got ${describe(exportName)}`, { field: 'exportName' });
    }
    let resolved: string;
    try {
      resolved = require.resolve(path.resolve(modulePath));
    } catch (err) {
      throw new BusError('HANDLER_MODULE_ERROR', `worker handler module ${modulePath} cannot be found: ${(err as Error).message}`, {
        modulePath,
      });
    }
    await probeWorkerHandler(resolved, exportName);
    const config = this.#host.config();
    if (this.#arena === undefined) {
      // Before anything is registered: a failure leaves no trace.
      try {
        this.#arena = new Arena(config.maxMemoryMB * 1024 * 1024);
      } catch (err) {
        throw new BusError('INVALID_CONFIG', `maxMemoryMB (${config.maxMemoryMB}) cannot be allocated for worker isolates: ${errorText(err)}`, {
          field: 'maxMemoryMB',
          value: config.maxMemoryMB,
        });
      }
    }
    const { native, registry } = this.#host;
    const name = `${path.basename(resolved)}#${exportName}`;
    const entry = registry.addWorker(eventType, name);
    const spec: WorkerHandlerSpec = { id: entry.id, type: eventType, name, modulePath: resolved, exportName };
    this.#specs.push(spec);
    native.setTypeIsolated(registry.typeId(eventType), true);
    this.#pool ??= new IsolatePool(
      { busId: native.id, arena: this.#arena.buffer, concurrency: config.concurrency, handlerTimeout: config.handlerTimeout },
      config.workerIsolates,
      {
        native,
        handlers: () => this.#specs,
        handlerName: (id) => registry.byId(id)?.name ?? `handler #${id}`,
        restartDelay: () => this.#host.config().reliabilityLimits.workerRestartDelay,
        onError: (err) => this.#host.onError(err),
      },
    );
    this.#pool.addHandler(spec);
    return () => {
      registry.removeEntry(entry);
      this.#specs = this.#specs.filter((s) => s !== spec);
      this.#pool?.removeHandler(spec.id);
    };
  }

  /**
   * An event as isolates read it. A flat payload goes as JSON (4x cheaper,
   * and exact for strings, numbers and booleans); anything else as a
   * structured clone, so Dates, Maps and the like survive. maxEventSize is
   * exact for these events.
   */
  serialise(envelope: IsolateEnvelope): Serialised {
    const { maxEventSize } = this.#host.config();
    const flat = isFlatPayload(envelope.payload);
    const bytes = flat ? Buffer.from(JSON.stringify(envelope)) : serialize(envelope);
    const size = bytes.length + 1;
    if (size > maxEventSize) {
      throw new BusError('EVENT_TOO_LARGE', `event is larger than maxEventSize (${maxEventSize} bytes): ${size} bytes serialised`, {
        field: 'maxEventSize',
        limit: maxEventSize,
        size,
      });
    }
    return { tag: flat ? ENCODING.JSON : ENCODING.CLONE, bytes };
  }

  /** Copies it into the arena: its offset, or -1 when the arena is full. */
  store(serialised: Serialised): number {
    return this.#arena?.store(serialised.tag, serialised.bytes) ?? -1;
  }

  free(offset: number, len: number): void {
    this.#arena?.free(offset, len);
  }

  ensureStarted(): void {
    this.#pool?.ensureStarted();
  }

  setHandlerTimeout(ms: number): void {
    this.#pool?.setHandlerTimeout(ms);
  }

  async stop(): Promise<void> {
    await this.#pool?.stop();
  }
}

// Runs inside each worker isolate: loads the worker handler modules,
// attaches this isolate's hand-off queue to the bus's native engine, and
// runs the deliveries it is handed. Events arrive serialised (v8
// structured clone) in the shared arena.
import { AsyncLocalStorage } from 'node:async_hooks';
import { deserialize } from 'node:v8';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { AckBuffer, failureRecord, type FailureRecord, OUTCOME } from '../acks';
import { ENCODING } from '../arena';
import { Delivery, type DeliveryHost } from '../delivery';
import { LANES } from '../event-record';
import { HandoffReader, type HandoffRegion } from '../handoff';
import type { RegisteredHandler } from '../handlers';
import { IsolateStatus } from './status';
import type { IsolateEnvelope, IsolateSetup, WorkerHandlerSpec } from './pool';
import { native } from '../native';
import { TimeoutQueue } from '../timeouts';

const setup = workerData as IsolateSetup;
const status = new IsolateStatus(setup.status);
// The delivery whose code is running, synchronously or in a continuation:
// when a handler kills the isolate (process.exit(), a throw that escapes),
// it is the one to blame, and the main thread charges it alone.
const current = new AsyncLocalStorage<Delivery>();
// Deliveries that finished before it died are acknowledged on the way out,
// or they would go back to the queue and run twice.
const dying = (): void => {
  const delivery = current.getStore();
  if (delivery) status.blame({ slot: delivery.slot, delivery: delivery.handlerId });
  try {
    acks.drain();
  } catch {
    // Nothing more can be done from a dying isolate; what is unacknowledged
    // is requeued, and counted as such.
  }
};
process.on('exit', dying);
process.on('uncaughtException', (err) => {
  dying();
  // Still fatal: the isolate's state is unknown after an escaped throw.
  throw err;
});
/** Each running delivery's status entry; then entries awaiting their acknowledgement. */
const entries = new Map<Delivery, number>();
const unacknowledged: number[] = [];
const byId = new Map<number, RegisteredHandler>();
const byType = new Map<string, RegisteredHandler[]>();

function load(spec: WorkerHandlerSpec): void {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(spec.modulePath);
    const fn = spec.exportName === 'default' ? (typeof mod === 'function' ? mod : mod?.default) : mod?.[spec.exportName];
    if (typeof fn !== 'function') throw new Error(`export '${spec.exportName}' of ${spec.modulePath} is not a function`);
    const entry: RegisteredHandler = { id: spec.id, type: spec.type, name: spec.name, key: spec.name, source: fn, fn, thisArg: undefined };
    byId.set(spec.id, entry);
    byType.set(spec.type, [...(byType.get(spec.type) ?? []), entry]);
  } catch (err) {
    parentPort?.postMessage({ kind: 'load-error', spec, message: String((err as Error)?.message ?? err) });
  }
}

function unload(id: number): void {
  const entry = byId.get(id);
  if (!entry) return;
  byId.delete(id);
  byType.set(entry.type, (byType.get(entry.type) ?? []).filter((h) => h !== entry));
}

setup.handlers.forEach(load);
parentPort?.on('message', (m: { kind: string; spec?: WorkerHandlerSpec; id?: number; ms?: number }) => {
  if (m.kind === 'add-handler' && m.spec) load(m.spec);
  if (m.kind === 'remove-handler' && m.id !== undefined) unload(m.id);
  if (m.kind === 'set-timeout' && m.ms !== undefined) {
    // Deliveries already tracked keep their deadlines in the old queue.
    oldTimeouts = oldTimeouts.filter((q) => !q.idle());
    oldTimeouts.push(timeouts);
    timeouts = new TimeoutQueue(m.ms);
  }
});

const region = native.isolateRegionLayout(setup.concurrency) as HandoffRegion;
const words = new Int32Array(new SharedArrayBuffer(native.isolateRegionWords(setup.concurrency) * 4));
const reader = new HandoffReader(new Uint32Array(words.buffer), region);
const arena = new Uint8Array(setup.arena);
let timeouts = new TimeoutQueue(setup.handlerTimeout);
let oldTimeouts: TimeoutQueue[] = [];

/** What handlers receive, as on the main thread, plus `signal`. */
function handlerEvent(e: IsolateEnvelope, attempt: number, delivery: Delivery): unknown {
  const p = e.payload;
  const event: Record<string, unknown> =
    p !== null && typeof p === 'object' && !Array.isArray(p) ? Object.assign({}, p as Record<string, unknown>) : {};
  event.id = e.id;
  event.type = e.type;
  event.payload = p;
  event.correlationId = e.correlationId;
  event.priority = LANES[e.lane];
  event.timestamp = e.timestamp;
  event.retryCount = attempt;
  Object.defineProperty(event, 'signal', { get: () => delivery.signal, enumerable: false });
  return event;
}

let sink: { complete(count: number, failures?: FailureRecord[]): void; pull(): number; readonly id: number };

const acks = new AckBuffer(
  reader,
  (count, failures) => {
    // The engine keeps the books; nothing comes back here.
    sink.complete(count, failures);
    for (const entry of unacknowledged) status.acknowledged(entry);
    unacknowledged.length = 0;
  },
);

const host: DeliveryHost = {
  handlerFailed: (delivery, handler, error, timedOut) => acks.fail(failureRecord(delivery.slot, delivery.handlerId, handler, error, timedOut)),
  deliveryDone: (delivery) => {
    const outcome = delivery.failures ? OUTCOME.FAILED : OUTCOME.OK;
    const entry = entries.get(delivery) ?? -1;
    entries.delete(delivery);
    status.finished(entry, outcome);
    unacknowledged.push(entry);
    acks.push(delivery.slot, delivery.handlerId, outcome);
  },
};

/** The event at `offset`; words from shared memory are checked, not trusted. */
function read(offset: number, len: number): IsolateEnvelope {
  if (offset <= 0 || len < 2 || offset + len > arena.length) throw new RangeError(`no event at arena offset ${offset} (${len} bytes)`);
  return (
    arena[offset] === ENCODING.JSON
      ? JSON.parse(Buffer.from(setup.arena, offset + 1, len - 1).toString('utf8'))
      : deserialize(arena.subarray(offset + 1, offset + len))
  ) as IsolateEnvelope;
}

function deliver(slot: number, handlerId: number, attempt: number, offset: number, len: number): void {
  let e: IsolateEnvelope;
  try {
    e = read(offset, len);
  } catch (err) {
    // Reading it again would fail again: not retryable.
    const message = `the event could not be read in the isolate: ${String((err as Error)?.message ?? err)}`;
    acks.fail({ slot, delivery: handlerId, handler: handlerId, handlerName: 'isolate', message, name: 'Error', retryable: false, timedOut: false, at: Date.now() });
    return acks.push(slot, handlerId, OUTCOME.FAILED);
  }
  let handlers: readonly RegisteredHandler[];
  if (handlerId === 0) handlers = byType.get(e.type) ?? [];
  else {
    const one = byId.get(handlerId);
    handlers = one ? [one] : [];
  }
  if (handlers.length === 0) return acks.push(slot, handlerId, OUTCOME.NO_HANDLER);
  const delivery = new Delivery(host, handlers, slot, handlerId, attempt, timeouts.deadline());
  entries.set(delivery, status.start(slot, handlerId));
  timeouts.track(delivery);
  status.running({ slot, delivery: handlerId });
  current.run(delivery, () => delivery.run(handlerEvent(e, attempt, delivery)));
  status.running(undefined);
}

// Each time its queue is empty this isolate is free, and takes the next
// delivery waiting for one (the engine's backlog): one stuck in a
// synchronous handler takes nothing meanwhile. A loop of quick synchronous
// handlers yields every 2 ms (or 64 pulls), acknowledging what finished, so
// its permits do not stay out of the window, the books hear of it, and
// this thread gets to its timers and messages. (Acknowledging after every
// pull instead costs W3 about a tenth: each acknowledgement wakes the main
// thread, which then competes with the isolates for the cores.)
const PULLS_PER_TURN = 64;
const PULL_TURN_MS = 2;
function takeWork(): void {
  const start = performance.now();
  for (let pulls = 0; ; pulls++) {
    reader.drain(deliver);
    if (pulls >= PULLS_PER_TURN || performance.now() - start > PULL_TURN_MS) {
      acks.drain();
      setImmediate(takeWork);
      return;
    }
    if (sink.pull() === 0) return;
  }
}
sink = native.IsolateSink.attach(setup.busId, words, takeWork);
parentPort?.postMessage({ kind: 'attached', sinkId: sink.id, threadId });
// Deliveries may already wait for an isolate (a new one replacing one that
// died): no notification will come for them.
takeWork();

// Values out of user code are hostile: reading a property can throw, and
// so can String(), instanceof or a `then`. Each case fails like any other
// failure (retried, dead-lettered with a readable error) or is refused with
// a code, and the bus carries on.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { BufferedEventBusService } from '..';
import { rejectsWithCode, startedBus, waitFor } from './helpers';

const throwingThen = (): unknown => ({
  get then(): never {
    throw new Error('then getter');
  },
});
const trapAll = (): unknown =>
  new Proxy(
    {},
    {
      get() {
        throw new Error('proxy get');
      },
      getPrototypeOf() {
        throw new Error('proxy getPrototypeOf');
      },
    },
  );
const errorWithThrowingGetters = (): unknown => {
  const e = new Error('hidden');
  for (const key of ['message', 'stack', 'retryable', 'name']) {
    Object.defineProperty(e, key, {
      get() {
        throw new Error(`${key} getter`);
      },
    });
  }
  return e;
};

const returns: [string, () => unknown][] = [
  ['an object whose then getter throws', throwingThen],
  ['a Proxy that throws on every trap', trapAll],
];
const throws: [string, () => unknown][] = [
  ['Object.create(null)', () => Object.create(null)],
  ['a Proxy that throws on every trap', trapAll],
  ['an error whose message, stack, name and retryable getters throw', errorWithThrowingGetters],
  ['a symbol', () => Symbol('odd')],
];

/** Every delivery path: the lone handler, with a timeout set, fan-out, and the retry. */
const paths: [string, Parameters<typeof startedBus>[1], number][] = [
  ['a lone handler', {}, 1],
  ['a handler with handlerTimeout', { handlerTimeout: 5000 }, 1],
  ['one of two handlers', {}, 2],
];

for (const [pathName, config, handlers] of paths) {
  for (const [what, make] of [...returns.map(([w, m]) => [`returns ${w}`, m] as const), ...throws.map(([w, m]) => [`throws ${w}`, m] as const)]) {
    test(`${pathName} that ${what} fails, is retried, then dead-lettered; the process carries on`, async (t) => {
      const bus = await startedBus(t, { ...config, retryAttempts: 1, retryDelays: [100] });
      let runs = 0;
      const hostile = what.startsWith('returns')
        ? () => {
            runs++;
            return make();
          }
        : () => {
            runs++;
            throw make();
          };
      bus.registerHandler('hostile', hostile);
      for (let i = 1; i < handlers; i++) bus.registerHandler('hostile', () => {});
      const errors: unknown[] = [];
      bus.on('handler_error', (info) => errors.push(info.error));
      await bus.emitEvent('hostile', { n: 1 });
      await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
      assert.equal(runs, 2, 'first run and one retry');
      const [letter] = bus.getDeadLetterQueue();
      assert.equal(typeof letter.lastError.message, 'string');
      assert.equal(letter.attempts, 2);
      assert.equal(errors.length, 2);
      // Still working.
      let ok = false;
      bus.registerHandler('fine', () => {
        ok = true;
      });
      await bus.emitEvent('fine', {});
      await waitFor(() => ok, 'a later event');
    });
  }
}

test('an error with retryable: false read through a getter skips the retries', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 3, retryDelays: [100] });
  bus.registerHandler('x', () => {
    throw Object.defineProperty(new Error('permanent'), 'retryable', { get: () => false });
  });
  await bus.emitEvent('x', {});
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter');
  assert.equal(bus.getDeadLetterQueue()[0].attempts, 1);
  assert.equal(bus.getDeadLetterQueue()[0].lastError.message, 'permanent');
});

test('a payload field named like an event field stays under payload; nothing leaks', async (t) => {
  const bus = await startedBus(t);
  let seen: { signal: unknown; type: string; payload: { signal: string; type: string } } | undefined;
  bus.registerHandler('clash', (e: any) => {
    seen = e;
  });
  for (let i = 0; i < 200; i++) await bus.emitEvent('clash', { signal: 'user signal', type: 'user type', retryCount: 'x' });
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 200, 'all events');
  assert.ok(seen!.signal instanceof AbortSignal, "the event's own signal wins");
  assert.equal(seen!.type, 'clash');
  assert.equal(seen!.payload.signal, 'user signal');
  assert.equal(seen!.payload.type, 'user type');
  assert.equal(bus.getMetrics().queueMetrics.rejected.INVALID_PAYLOAD, undefined);
});

test('hostile payloads, options and event objects are refused with a code, and leave nothing behind', async (t) => {
  const bus = await startedBus(t, { maxQueueSize: 100, fallbackToSync: false, concurrency: 1 });
  const getterPayload = {
    get email(): never {
      throw new Error('payload getter');
    },
  };
  await rejectsWithCode(() => bus.emitEvent('x', getterPayload), 'INVALID_PAYLOAD', 'payload getter');
  await rejectsWithCode(() => bus.emitEvent('x', trapAll()), 'INVALID_PAYLOAD');
  let deep: Record<string, unknown> = {};
  const root = deep;
  for (let i = 0; i < 20_000; i++) deep = (deep.next = {}) as Record<string, unknown>;
  await rejectsWithCode(() => new BufferedEventBusService({ maxEventSize: 1 << 26 }).emitEvent('x', root), 'INVALID_PAYLOAD', 'nested too deeply');
  await rejectsWithCode(() => bus.emitEvent('x', {}, 'critical' as never), 'INVALID_ARGUMENT', 'options must be an object');
  await rejectsWithCode(() => bus.emitEvent('x', {}, null as never), 'INVALID_ARGUMENT', 'options must be an object');
  const hostileOptions = {
    get priority(): never {
      throw new Error('options getter');
    },
  };
  await rejectsWithCode(() => bus.emitEvent('x', {}, hostileOptions), 'INVALID_ARGUMENT', 'options getter');
  const hostileEvent = {
    get type(): never {
      throw new Error('event getter');
    },
    payload: {},
  };
  await rejectsWithCode(() => bus.emit(hostileEvent), 'INVALID_ARGUMENT', 'event getter');
  await rejectsWithCode(() => bus.emit({ type: 'x', payload: {} }, 'low' as never), 'INVALID_ARGUMENT', 'options must be an object');
  // No slot leaked: the queue still takes its whole capacity.
  bus.registerHandler('x', () => new Promise(() => {}));
  await bus.emitEvent('x', { i: 0 });
  // A worker takes it off the ring when it gets to it (later on a loaded machine).
  await waitFor(() => bus.getMetrics().queueMetrics.inFlight === 1, 'the first event running');
  for (let i = 1; i < 101; i++) await bus.emitEvent('x', { i });
  await rejectsWithCode(() => bus.emitEvent('x', {}), 'QUEUE_FULL');
});

test('a handler object whose handle getter throws is refused and leaves no trace', async (t) => {
  const bus = await startedBus(t);
  const hostile = {
    get handle(): never {
      throw new Error('handle getter');
    },
  };
  await rejectsWithCode(() => bus.registerHandler('x', hostile as never), 'INVALID_HANDLER', 'handle getter');
  assert.equal(bus.getMetrics().queueMetrics.byType.x?.handlers ?? 0, 0);
  await rejectsWithCode(() => bus.registerWorkerHandler('y', __filename, null as never), 'INVALID_ARGUMENT', 'options must be an object');
});

test('a maxMemoryMB that validates but cannot be allocated fails registration with a code, leaving no trace', async (t) => {
  const bus = await startedBus(t, { maxMemoryMB: 1_048_576 });
  const handlers = path.join(__dirname, 'fixtures', 'isolate-handlers.js');
  await rejectsWithCode(() => bus.registerWorkerHandler('big', handlers, { exportName: 'burn' }), 'INVALID_CONFIG', 'maxMemoryMB');
  // The type is not half-registered: it takes main-thread handlers.
  let handled = 0;
  bus.registerHandler('big', () => void handled++);
  await bus.emitEvent('big', {});
  await waitFor(() => handled === 1, 'the main-thread handler');
});

test('a shutdown timeout a timer cannot honour is refused, and running handlers are not aborted', async (t) => {
  const bus = await startedBus(t);
  await rejectsWithCode(() => bus.shutdown({ timeout: 2 ** 31 }), 'INVALID_ARGUMENT', '2147483647');
  assert.equal(bus.isReady(), true);
});

test('registering many handlers on one type is linear, and every one runs', async (t) => {
  const bus = await startedBus(t, { concurrency: 65_536 });
  let runs = 0;
  const started = performance.now();
  for (let i = 0; i < 40_000; i++) bus.registerHandler('wide', () => void runs++);
  const took = performance.now() - started;
  await bus.emitEvent('wide', {});
  await waitFor(() => runs === 40_000, 'every handler', 30_000);
  // Quadratic registration took 13 s here; linear takes milliseconds. The
  // bound is loose so a loaded machine still passes.
  assert.ok(took < 5_000, `40 000 registrations took ${took.toFixed(0)} ms`);
});

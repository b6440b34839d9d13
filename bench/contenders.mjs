// One adapter per queue under test: the same producer and handler code
// drives each. `emit(payload, priority)` queues one event; `onHandled` is
// called after the handler of each event has settled.

import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import fastq from 'fastq';
import PQueue from 'p-queue';

const require = createRequire(import.meta.url);
const { BufferedEventBusService } = require('../dist/index.js');

/** This bus as W1 configures it (see README, "Benchmarks"). */
async function nativeBus({ handler, onHandled, concurrency, maxQueueSize }, propagateContext) {
  const bus = new BufferedEventBusService({
    concurrency,
    maxQueueSize,
    maxMemoryMB: 512,
    fallbackToSync: false,
    propagateContext,
    monitoring: { enabled: false },
  });
  bus.registerHandler('bench', async (event) => {
    await handler(event);
    onHandled(event.label);
  });
  await bus.initialize();
  return {
    emit: (payload, priority) => bus.emitEvent('bench', payload, { priority }),
    close: () => bus.shutdown(),
    bus,
  };
}

const PQ_PRIORITY = { critical: 2, normal: 1, low: 0 };

export const contenders = {
  native: (options) => nativeBus(options, true),

  /** The same bus without async-context propagation (`propagateContext: false`). */
  nativeNoContext: (options) => nativeBus(options, false),

  async eventemitter({ handler, onHandled }) {
    const emitter = new EventEmitter();
    emitter.on('bench', async (payload) => {
      await handler(payload);
      onHandled(payload.label);
    });
    return { emit: (payload) => emitter.emit('bench', payload), close: async () => {} };
  },

  // fastq as its documentation usually shows it: one task at a time.
  fastq1: (options) => contenders.fastq({ ...options, concurrency: 1 }),

  async fastq({ handler, onHandled, concurrency }) {
    const q = fastq.promise(async (payload) => {
      await handler(payload);
      onHandled(payload.label);
    }, concurrency);
    // fastq has no priorities: the closest it offers is unshift for urgent work.
    return {
      emit: (payload, priority) => (priority === 'critical' ? q.unshift(payload) : q.push(payload)),
      close: () => q.drained(),
    };
  },

  async pqueue({ handler, onHandled, concurrency }) {
    const q = new PQueue({ concurrency });
    return {
      emit: (payload, priority) =>
        q.add(async () => {
          await handler(payload);
          onHandled(payload.label);
        }, { priority: PQ_PRIORITY[priority] }),
      close: () => q.onIdle(),
    };
  },
};

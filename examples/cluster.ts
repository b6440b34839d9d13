// BootifyJS cluster mode on the Redis backend: the primary forks workers,
// each bootstrapping the same decorated listeners on one bus shared
// through Redis; the primary only emits, like a web node, and takes no
// event. Each event is handled by one worker.
// Run: REDIS_URL=redis://127.0.0.1:6379 npm run example:cluster
import cluster from 'node:cluster';
import {
  bootstrapEventSystem,
  BufferedEventBusService,
  defaultBufferedEventConfig,
  EventListener,
  getAllComponents,
  OnEvent,
  type BufferedEventConfig,
} from '@bootifyjs/native-events';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const workers = Number(process.env.WORKERS ?? 3);
const orders = Number(process.env.ORDERS ?? 30);
const config: BufferedEventConfig = {
  ...defaultBufferedEventConfig,
  backend: { ...defaultBufferedEventConfig.backend, type: 'redis', url, name: process.env.BUS_NAME ?? 'cluster-example' },
};

@EventListener()
export class OrderListener {
  @OnEvent('order.placed')
  async onOrderPlaced(event: { orderId: string; priority: string }) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    process.send?.({ handled: event.orderId, priority: event.priority });
  }
}

async function worker(): Promise<void> {
  const { bufferedEventBus, ready } = bootstrapEventSystem(getAllComponents(), { useBufferedProcessing: true, bufferedEventConfig: config });
  await ready;
  process.send?.({ ready: true });
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    await bufferedEventBus?.shutdown();
    process.exit(0);
  });
}

async function primary(): Promise<void> {
  const byWorker = new Map<number, number>();
  const seen = new Set<string>();
  let handled = 0;
  let readyCount = 0;
  let allHandled!: () => void;
  const done = new Promise<void>((resolve) => (allHandled = resolve));
  let allReady!: () => void;
  const up = new Promise<void>((resolve) => (allReady = resolve));
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    w.on('message', (m: { ready?: boolean; handled?: string }) => {
      if (m.ready && ++readyCount === workers) allReady();
      if (m.handled !== undefined) {
        byWorker.set(w.id, (byWorker.get(w.id) ?? 0) + 1);
        seen.add(m.handled);
        if (++handled === orders) allHandled();
      }
    });
  }
  await up;
  console.log(`${workers} workers listening on ${url}`);
  // No listeners here: this bus only emits.
  const bus = new BufferedEventBusService(config);
  await bus.initialize();
  for (let n = 0; n < orders; n++) {
    await bus.emitEvent('order.placed', { orderId: `o-${n}` }, { priority: n % 5 === 0 ? 'critical' : 'normal' });
  }
  await done;
  // Give a duplicate a moment to show up.
  await new Promise((resolve) => setTimeout(resolve, 200));
  console.log(`${handled} orders handled (${seen.size} distinct), by worker: ${[...byWorker.entries()].map(([id, n]) => `#${id}: ${n}`).join(', ')}`);
  console.log(`the primary took ${bus.getMetrics().backend?.taken ?? 0} events itself`);
  await bus.shutdown();
  for (const w of Object.values(cluster.workers ?? {})) w?.send('stop');
}

(cluster.isPrimary ? primary() : worker()).catch((err) => {
  console.error(err);
  process.exit(1);
});

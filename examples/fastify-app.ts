// A BootifyJS-style shop on Fastify: its routes emit events that decorated
// listeners handle on the native bus, and the plugin serves the metrics,
// health and the live dashboard, with the dead-letter admin routes behind
// a bearer token.
// Run: npm run example:server   (PORT, HOST, ADMIN_TOKEN, TRAFFIC=0 to tune)
import { randomBytes, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyRequest } from 'fastify';
import {
  Autowired,
  bootstrapEventSystem,
  BufferedEventBusService,
  container,
  EventListener,
  getAllComponents,
  NonRetryableError,
  OnEvent,
  Service,
} from '@bootifyjs/native-events';
import { fastifyNativeEvents } from '@bootifyjs/native-events/fastify';

interface OrderPlaced {
  orderId: string;
  item: string;
  quantity: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Service()
class Inventory {
  /** Out of stock until restocked: its orders fail for good and are dead-lettered. */
  readonly soldOut = new Set(['gadget-x']);
  reserved = 0;

  async reserve(item: string, quantity: number): Promise<void> {
    await sleep(2 + Math.random() * 25);
    if (this.soldOut.has(item)) throw new NonRetryableError(`${item} is out of stock`);
    // A flaky warehouse API: the retries absorb it.
    if (Math.random() < 0.02) throw new Error('warehouse API timed out');
    this.reserved += quantity;
  }
}

// Exported only so that noUnusedLocals sees a use: getAllComponents() finds it.
@EventListener()
export class ShopEvents {
  constructor(private readonly inventory: Inventory) {}

  @OnEvent('order.placed')
  async reserveStock(event: OrderPlaced) {
    await this.inventory.reserve(event.item, event.quantity);
  }

  @OnEvent('user.registered')
  async sendWelcome() {
    await sleep(5);
  }
}

@Service()
class OrderService {
  private next = 1;
  constructor(@Autowired() private readonly events: BufferedEventBusService) {}

  place(item: string, quantity: number, express: boolean): Promise<string> {
    const order: OrderPlaced = { orderId: `order-${this.next++}`, item, quantity };
    return this.events.emitEvent('order.placed', order, { priority: express ? 'critical' : 'normal' });
  }
}

/** The admin token: ADMIN_TOKEN, or a fresh one printed with the dashboard's address. */
const token = process.env.ADMIN_TOKEN || randomBytes(12).toString('hex');
const expected = Buffer.from(`Bearer ${token}`);

function authorize(request: FastifyRequest): boolean {
  const given = Buffer.from(String(request.headers.authorization ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const ITEMS = ['book', 'lamp', 'mug', 'chair', 'gadget-x'];

async function main() {
  const { bufferedEventBus, ready } = bootstrapEventSystem(getAllComponents(), {
    useBufferedProcessing: true,
    bufferedEventConfig: { workerCount: 2, retryAttempts: 2, retryDelays: [200, 400] },
  });
  await ready;
  const bus = bufferedEventBus!;
  const orders = container.resolve(OrderService);
  const inventory = container.resolve(Inventory);

  const app = Fastify({ logger: { level: 'warn' } });
  await app.register(fastifyNativeEvents, { bus, prefix: '/events', admin: { authorize } });

  app.post<{ Body: { item: string; quantity: number; express?: boolean } }>(
    '/orders',
    {
      schema: {
        body: {
          type: 'object',
          required: ['item', 'quantity'],
          properties: { item: { type: 'string', maxLength: 50 }, quantity: { type: 'integer', minimum: 1, maximum: 100 }, express: { type: 'boolean' } },
        },
      },
    },
    async (request, reply) => {
      const { item, quantity, express = false } = request.body;
      return reply.code(202).send({ eventId: await orders.place(item, quantity, express) });
    },
  );
  app.post<{ Body: { email: string } }>(
    '/users',
    { schema: { body: { type: 'object', required: ['email'], properties: { email: { type: 'string', maxLength: 200 } } } } },
    async (request, reply) => {
      const eventId = await bus.emitEvent('user.registered', { email: request.body.email }, { priority: 'low' });
      return reply.code(202).send({ eventId });
    },
  );
  app.post('/inventory/restock', async () => {
    inventory.soldOut.clear();
    return { soldOut: [] };
  });

  const port = Number(process.env.PORT ?? 3000);
  const host = process.env.HOST ?? '127.0.0.1';
  const origin = await app.listen({ port, host });

  // Customers, through the app's own routes (TRAFFIC=0 turns them off).
  let traffic: NodeJS.Timeout | undefined;
  if (process.env.TRAFFIC !== '0') {
    traffic = setInterval(() => {
      const item = Math.random() < 0.03 ? 'gadget-x' : ITEMS[Math.floor(Math.random() * (ITEMS.length - 1))];
      const payload = { item, quantity: 1 + Math.floor(Math.random() * 5), express: Math.random() < 0.1 };
      void app.inject({ method: 'POST', url: '/orders', payload });
      if (Math.random() < 0.05) void app.inject({ method: 'POST', url: '/users', payload: { email: `u${Date.now()}@example.com` } });
    }, 25);
  }

  console.log(`Shop listening on ${origin}`);
  console.log(`Dashboard: ${origin}/events/dashboard#token=${token}`);
  console.log(`Metrics:   ${origin}/events/metrics    Health: ${origin}/events/health`);
  console.log(`Orders for gadget-x are dead-lettered until: curl -X POST ${origin}/inventory/restock`);
  console.log('Then replay them from the dashboard. Ctrl-C stops.');

  const stop = async () => {
    clearInterval(traffic);
    await app.close();
    const report = await bus.shutdown();
    console.log(`\nStopped: ${bus.getMetrics().queueMetrics.totalProcessed} events processed, ${report.remaining.length} left over.`);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

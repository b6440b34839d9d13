// The seed's order example with its failure handling: a payment service
// that fails once (retried), an order that always fails (dead-lettered,
// then replayed once the service is fixed).
// Run: npm run example:orders
import {
  bootstrapEventSystem,
  container,
  EventListener,
  getAllComponents,
  type IEvent,
  OnEvent,
  Service,
} from '@bootifyjs/native-events';

class OrderCreatedEvent implements IEvent {
  readonly type = 'order.created';
  constructor(
    public readonly orderId: string,
    public readonly customerId: string,
    public readonly amount: number,
    public correlationId?: string,
  ) {}
  get payload() {
    return { orderId: this.orderId, customerId: this.customerId, amount: this.amount };
  }
}

@Service()
class PaymentService {
  outage = new Set(['order-3']);
  private flaky = new Set(['order-2']);
  readonly charged: string[] = [];

  async processPayment(orderId: string, amount: number): Promise<void> {
    if (this.outage.has(orderId)) throw new Error(`payment provider rejects ${orderId}`);
    if (this.flaky.delete(orderId)) throw new Error(`timeout charging ${orderId}`);
    this.charged.push(`${orderId} ($${amount})`);
  }
}

@EventListener()
export class OrderEventHandler {
  constructor(private readonly payments: PaymentService) {}

  @OnEvent('order.created')
  async handleOrderCreated(event: OrderCreatedEvent & { retryCount: number }) {
    const { orderId, amount } = event.payload;
    console.log(`  charging ${orderId}, attempt ${event.retryCount + 1}`);
    await this.payments.processPayment(orderId, amount);
  }
}

async function main() {
  const { bufferedEventBus } = bootstrapEventSystem(getAllComponents(), {
    useBufferedProcessing: true,
    bufferedEventConfig: { workerCount: 2, retryAttempts: 2, retryDelays: [100, 200] },
  });
  const bus = bufferedEventBus!;
  for (let i = 1; i <= 4; i++) await bus.emit(new OrderCreatedEvent(`order-${i}`, `customer-${i}`, i * 25));

  await until(() => bus.getDeadLetterQueue().length === 1 && bus.getMetrics().retryStats.scheduledRetries === 0);
  const [letter] = bus.getDeadLetterQueue();
  console.log(`\nDead letter: ${letter.event.type} ${JSON.stringify(letter.event.payload)}`);
  console.log(`  ${letter.attempts} attempts by ${letter.handler}, last error: ${letter.lastError.message}`);

  console.log('\nProvider fixed; replaying the dead letter:');
  container.resolve(PaymentService).outage.clear();
  bus.replayDeadLetter(letter.id);
  await until(() => container.resolve(PaymentService).charged.length === 4);

  const { retryStats } = bus.getMetrics();
  console.log(`\nCharged: ${container.resolve(PaymentService).charged.join(', ')}`);
  console.log(`Retries ${retryStats.totalRetries}, dead-lettered ${retryStats.deadLettered}, replayed ${retryStats.replayed}, now in DLQ ${retryStats.deadLetterQueueSize}`);
  await bus.shutdown();
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

// The seed's user-registration example: a decorated listener with injected
// services, a service emitting through the injected buffered bus.
// Run: npm run example:users
import {
  Autowired,
  bootstrapEventSystem,
  BufferedEventBusService,
  container,
  defaultBufferedEventConfig,
  EventListener,
  getAllComponents,
  OnEvent,
  Service,
} from '@bootifyjs/native-events';

interface UserRegistered {
  userId: string;
  email: string;
}

@Service()
class Mailer {
  readonly sent: string[] = [];
  async sendWelcomeEmail(email: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    this.sent.push(email);
  }
}

@Service()
class UserRepository {
  readonly profiles = new Map<string, string>();
  async createUserProfile(userId: string, email: string): Promise<void> {
    this.profiles.set(userId, email);
  }
}

@EventListener()
export class UserEventHandler {
  constructor(
    private readonly mailer: Mailer,
    private readonly users: UserRepository,
  ) {}

  @OnEvent('user.registered')
  async handleUserRegistered(event: UserRegistered & { priority: string }) {
    console.log(`  processing registration for ${event.email} (${event.priority})`);
    await this.mailer.sendWelcomeEmail(event.email);
    await this.users.createUserProfile(event.userId, event.email);
  }
}

@Service()
class UserService {
  constructor(@Autowired() private readonly bufferedEventBus: BufferedEventBusService) {}

  async registerUser(userId: string, email: string, vip = false) {
    return this.bufferedEventBus.emitEvent('user.registered', { userId, email }, { priority: vip ? 'critical' : 'normal' });
  }
}

async function main() {
  const { bufferedEventBus, ready } = bootstrapEventSystem(getAllComponents(), {
    useBufferedProcessing: true,
    bufferedEventConfig: { ...defaultBufferedEventConfig, enabled: true, workerCount: 2, maxQueueSize: 10000 },
  });
  await ready;
  const users = container.resolve(UserService);
  console.log('Registering five users:');
  for (const [i, name] of ['ada', 'grace', 'alan', 'edsger', 'barbara'].entries()) {
    const id = await users.registerUser(`u${i}`, `${name}@example.com`, name === 'grace');
    console.log(`  emitted ${id}`);
  }
  const report = await bufferedEventBus!.shutdown();
  console.log('\nWelcome emails sent:', container.resolve(Mailer).sent.join(', '));
  console.log('Profiles created:', container.resolve(UserRepository).profiles.size);
  const { queueMetrics } = bufferedEventBus!.getMetrics();
  console.log(`Processed ${queueMetrics.totalProcessed}, average ${queueMetrics.averageProcessingTime.toFixed(2)} ms, left over ${report.remaining.length}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

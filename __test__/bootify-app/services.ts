import { Autowired, BufferedEventBusService, Service } from '../..';

@Service()
export class UserRepository {
  readonly profiles = new Map<string, { email: string }>();

  async createProfile(userId: string, email: string): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.profiles.set(userId, { email });
  }
}

/** A mailer stub that records what it was asked to send. */
@Service()
export class Mailer {
  readonly sent: { to: string; subject: string }[] = [];

  async sendWelcomeEmail(to: string): Promise<void> {
    this.sent.push({ to, subject: 'Welcome' });
  }

  async sendReceipt(to: string, amount: number): Promise<void> {
    this.sent.push({ to, subject: `Receipt ${amount}` });
  }
}

@Service()
export class AuditLog {
  readonly entries: string[] = [];

  record(entry: string): void {
    this.entries.push(entry);
  }
}

/** Emits through the buffered bus, injected as in the seed's UserService. */
@Service()
export class UserService {
  constructor(@Autowired() private readonly bufferedEventBus: BufferedEventBusService) {}

  get bus(): BufferedEventBusService {
    return this.bufferedEventBus;
  }

  async registerUser(userId: string, email: string): Promise<string> {
    return this.bufferedEventBus.emitEvent('user.registered', { userId, email }, { priority: 'normal' });
  }
}

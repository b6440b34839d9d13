import { Autowired, EventListener, OnEvent } from '../..';
import type { Delivered } from './events';
import { AuditLog, Mailer, UserRepository } from './services';

@EventListener()
export class UserEventHandler {
  readonly handled: string[] = [];

  constructor(
    private readonly users: UserRepository,
    private readonly mailer: Mailer,
  ) {}

  @OnEvent('user.registered')
  async handleUserRegistered(event: Delivered<{ userId: string; email: string }>): Promise<void> {
    await this.mailer.sendWelcomeEmail(event.email);
    await this.users.createProfile(event.userId, event.payload.email);
    this.handled.push(event.userId);
  }
}

@EventListener()
export class OrderEventHandler {
  @Autowired()
  audit!: AuditLog;

  readonly orders: { orderId: string; priority: string }[] = [];

  @OnEvent('order.processed')
  async handleOrderProcessed(event: Delivered<{ orderId: string; amount: number }>): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.orders.push({ orderId: event.orderId, priority: event.priority });
    this.audit.record(`order ${event.orderId}`);
  }

  @OnEvent('user.registered')
  auditRegistration(event: Delivered<{ userId: string }>): void {
    this.audit.record(`user ${event.userId}`);
  }
}

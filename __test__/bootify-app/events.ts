// Events in the shape of the seed document's examples.
import type { IEvent } from '../..';

export class UserRegisteredEvent implements IEvent {
  readonly type = 'user.registered';

  constructor(
    public readonly userId: string,
    public readonly email: string,
    public readonly timestamp: number = Date.now(),
    public correlationId?: string,
  ) {}

  get payload() {
    return { userId: this.userId, email: this.email, timestamp: this.timestamp };
  }
}

export class OrderProcessedEvent implements IEvent {
  readonly type = 'order.processed';

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

/** What handlers receive from the buffered bus: payload fields at top level. */
export type Delivered<P> = P & { type: string; payload: P; correlationId: string; priority: string; retryCount: number };

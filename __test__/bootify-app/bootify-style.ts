// A listener declared the way BootifyJS's own decorators declare one, with
// reflect-metadata and the same keys, without this package's decorators.
import 'reflect-metadata';

export class LegacyNotificationListener {
  static instances = 0;
  readonly notified: string[] = [];

  constructor() {
    LegacyNotificationListener.instances++;
  }

  onUserRegistered(event: { email: string }): void {
    this.notified.push(event.email);
  }
}

Reflect.defineMetadata('bootify:event-listener', true, LegacyNotificationListener);
Reflect.defineMetadata(
  'bootify:on-event',
  [{ eventType: 'user.registered', methodName: 'onUserRegistered' }],
  LegacyNotificationListener,
);

// BootifyJS's event decorators, writing exactly BootifyJS's metadata, so a
// class decorated by either library is found by either library.
import 'reflect-metadata';
import { registerComponent } from './container';
import { checkType } from '../handlers';

/** `true` on a class decorated `@EventListener()`. */
export const EVENT_LISTENER_KEY = 'bootify:event-listener';
/** `{ eventType, methodName }[]`, one entry per `@OnEvent` method. */
export const ON_EVENT_KEY = 'bootify:on-event';

export interface OnEventMetadata {
  eventType: string;
  methodName: string | symbol;
}

type Constructor = abstract new (...args: any[]) => unknown;

/** Marks a class as an event listener and registers it as a singleton component. */
export function EventListener(): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(EVENT_LISTENER_KEY, true, target);
    registerComponent(target as unknown as Constructor);
  };
}

/** Registers the method as a handler of `eventType` (a class may have several). */
export function OnEvent(eventType: string): MethodDecorator {
  checkType(eventType);
  return (target, methodName) => {
    const ctor = target.constructor;
    const existing: OnEventMetadata[] = Reflect.getMetadata(ON_EVENT_KEY, ctor) ?? [];
    // A new array, so a subclass never appends to its parent's list.
    Reflect.defineMetadata(ON_EVENT_KEY, [...existing, { eventType, methodName }], ctor);
  };
}

/** The `@OnEvent` entries of a listener class, or none if it is not one. */
export function listenerMethods(component: unknown): OnEventMetadata[] {
  if (typeof component !== 'function') return [];
  if (Reflect.getMetadata(EVENT_LISTENER_KEY, component) !== true) return [];
  const entries: unknown = Reflect.getMetadata(ON_EVENT_KEY, component);
  return Array.isArray(entries) ? (entries as OnEventMetadata[]) : [];
}

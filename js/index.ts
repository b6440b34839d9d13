import 'reflect-metadata';

export { bootstrapEventSystem } from './bootify/bootstrap';
export { BufferedEventBusService } from './buffered-event-bus';
export { defaultBufferedEventConfig } from './config';
export { Autowired, Component, Container, container, getAllComponents, Service } from './bootify/container';
export { EVENT_LISTENER_KEY, EventListener, ON_EVENT_KEY, OnEvent } from './bootify/decorators';
export { HandlerTimeoutError } from './delivery';
export { BusError, NonRetryableError } from './errors';
export { EventBusService } from './bootify/event-bus';
export * as testing from './testing';

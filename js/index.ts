export { BufferedEventBusService } from './buffered-event-bus';
export { defaultBufferedEventConfig } from './config';
export { HandlerTimeoutError } from './delivery';
export { BusError, NonRetryableError } from './errors';
export * as testing from './testing';

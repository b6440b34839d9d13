export { BufferedEventBusService } from './buffered-event-bus';
export { defaultBufferedEventConfig } from './config';
export { BusError } from './errors';

// Hooks for testing failure paths for real. Not for production use.
import { nativeOf } from './buffered-event-bus';
import type { BufferedEventBusService } from './buffered-event-bus';
import { BusError } from './errors';

function nativeFor(bus: BufferedEventBusService) {
  const n = nativeOf.get(bus);
  if (!n) throw new BusError('INVALID_ARGUMENT', 'not a BufferedEventBusService of this package', { field: 'bus' });
  return n;
}

/** The next native worker to take a batch of deliveries panics while holding it. */
export function injectWorkerPanic(bus: BufferedEventBusService): void {
  nativeFor(bus).injectWorkerPanic();
}

/** While set, starting native worker threads fails (call before `initialize()`). */
export function failWorkerStarts(bus: BufferedEventBusService, fail = true): void {
  nativeFor(bus).failWorkerStarts(fail);
}

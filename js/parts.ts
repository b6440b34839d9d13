import type { BufferedEventConfig } from '../index';
import type { Books } from './books';
import type { SlotTable } from './event-record';
import type { HandlerRegistry } from './handlers';
import type { BusLog } from './logs';
import type { WorkerHandlers } from './isolates/handlers';
import type { NativeBus } from './native';
import type { Observer } from './observer';
import type { SharedRing } from './ring';

/** The parts of one bus that its intake and its dispatcher both work with. */
export interface BusParts {
  readonly native: NativeBus;
  readonly ring: SharedRing;
  readonly slots: SlotTable;
  readonly registry: HandlerRegistry;
  readonly observer: Observer;
  readonly books: Books;
  readonly workers: WorkerHandlers;
  readonly log: BusLog;
  /** The running configuration (it changes with `updateConfig`). */
  config(): BufferedEventConfig;
}

// Critical before low under load, through bootstrapEventSystem.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootstrapEventSystem, container, EventListener, OnEvent } from '..';
import { waitFor } from './helpers';

@EventListener()
class SlowWorkHandler {
  readonly order: string[] = [];

  @OnEvent('work')
  async handle(event: { label: string }): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 2));
    this.order.push(event.label);
  }
}

test('critical events overtake queued low events under load', async () => {
  const { bufferedEventBus, ready } = bootstrapEventSystem([SlowWorkHandler], {
    useBufferedProcessing: true,
    bufferedEventConfig: { workerCount: 2, concurrency: 2 },
  });
  const bus = bufferedEventBus!;
  await ready;
  const handler = container.resolve(SlowWorkHandler);
  for (let i = 0; i < 200; i++) void bus.emitEvent('work', { label: `low-${i}` }, { priority: 'low' });
  for (let i = 0; i < 10; i++) void bus.emitEvent('work', { label: `critical-${i}` }, { priority: 'critical' });
  await waitFor(() => handler.order.length === 210, 'every event', 20_000);
  const lastCritical = Math.max(...handler.order.flatMap((l, i) => (l.startsWith('critical') ? [i] : [])));
  assert.ok(lastCritical < 2 + 10 + 2, `critical events handled by position ${lastCritical + 1}`);
  await bus.shutdown();
});

// npm start: registers a few handlers, emits events of all three
// priorities while the handlers are busy, and prints what was handled, in
// what order, and the metrics.
'use strict';

const { BufferedEventBusService } = require('@bootifyjs/native-events');

async function main() {
  const bus = new BufferedEventBusService({ workerCount: 2, concurrency: 2 });
  const handled = [];

  bus.registerHandler('system.alert', async (event) => {
    handled.push(`critical  system.alert     ${event.message}`);
  });
  bus.registerHandler('user.action', async (event) => {
    await sleep(5);
    handled.push(`normal    user.action      user ${event.userId} ${event.action}`);
  });
  bus.registerHandler('analytics.track', (event) => {
    handled.push(`low       analytics.track  ${event.page}`);
  });
  // A second handler for the same type: every handler runs (fan-out).
  bus.registerHandler('user.action', { audit: [], handle(event) { this.audit.push(event.id); } });

  await bus.initialize();

  // The first user.action (two handlers) fills the two-slot window; what is
  // emitted meanwhile queues, and leaves the queue critical first, then
  // normal, then low, whatever order it was emitted in.
  for (let i = 1; i <= 3; i++) {
    await bus.emitEvent('user.action', { userId: String(100 + i), action: 'login' }, { priority: 'normal' });
  }
  for (let i = 1; i <= 3; i++) {
    await bus.emitEvent('analytics.track', { event: 'page_view', page: `/page/${i}` }, { priority: 'low' });
  }
  await bus.emitEvent('system.alert', { message: 'Critical system error' }, { priority: 'critical' });

  const report = await bus.shutdown();
  console.log('Handled, in order:');
  for (const line of handled) console.log(`  ${line}`);
  const { queueMetrics, retryStats } = bus.getMetrics();
  console.log('\nMetrics:');
  console.log(`  processed ${queueMetrics.totalProcessed}, succeeded ${queueMetrics.succeeded}, failed ${queueMetrics.failed}`);
  for (const [priority, m] of Object.entries(queueMetrics.byPriority)) {
    console.log(`  ${priority.padEnd(8)} dispatched ${m.dispatched}, queued ${m.queued}`);
  }
  console.log(`  average processing time ${queueMetrics.averageProcessingTime.toFixed(2)} ms`);
  console.log(`  success rate ${(retryStats.successRate * 100).toFixed(0)} %`);
  console.log(`  left at shutdown: ${report.remaining.length} queued, ${report.inFlightAborted.length} running`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

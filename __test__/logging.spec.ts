// The bus's logs reach the application's logger: a real pino instance
// writing to a stream receives the native core's structured records
// (workers, retries, dead letters, panics, the journal, shutdown) and this
// layer's (overflow, isolates); without a logger, warnings are shown once;
// a logger that throws never reaches the bus.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { BufferedEventBusService, NonRetryableError, testing, type BufferedEventConfigInput, type LoggerLike } from '..';
import { blockWindow, waitFor } from './helpers';

interface Line {
  level: number;
  msg: string;
  target: string;
  component?: string;
  [field: string]: unknown;
}

/** A pino logger at `level` whose JSON lines are collected. */
function pinoLines(level = 'debug'): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

const WARN = 40;
const ERROR = 50;
const INFO = 30;
const DEBUG = 20;

function find(lines: Line[], msg: string): Line | undefined {
  return lines.find((l) => l.msg === msg);
}

async function settled(bus: BufferedEventBusService, total: number): Promise<void> {
  await waitFor(() => {
    const q = bus.getMetrics().queueMetrics;
    return q.succeeded + q.failed + q.unhandled === total;
  }, `${total} events finished`);
}

test('pino receives the native core structured records: workers, retries, dead letters, panics, shutdown', async () => {
  const { logger, lines } = pinoLines('debug');
  const config: BufferedEventConfigInput = { workerCount: 2, retryAttempts: 1, retryDelays: [100], logger };
  const bus = new BufferedEventBusService(config);
  await bus.initialize();
  bus.registerHandler('charge', function chargeCard(): never {
    throw new Error('card declined');
  });
  bus.registerHandler('audit', () => {
    throw new NonRetryableError('malformed');
  });
  await bus.emitEvent('charge', { n: 1 });
  await bus.emitEvent('audit', { n: 2 });
  await settled(bus, 2);
  await bus.scaleWorkers(3);
  testing.injectWorkerPanic(bus);
  bus.registerHandler('ok', () => {});
  await bus.emitEvent('ok', {});
  await settled(bus, 3);
  await waitFor(() => find(lines, 'worker thread panicked; its deliveries were put back and it carries on') !== undefined, 'the panic record');
  const report = await bus.shutdown();

  const retry = find(lines, 'retry scheduled');
  assert.ok(retry, 'a retry record');
  assert.equal(retry.level, DEBUG);
  assert.equal(retry.target, 'events::retry');
  assert.equal(retry.type, 'charge');
  assert.equal(retry.handler, 'chargeCard');
  assert.equal(retry.attempt, 1);
  assert.ok(typeof retry.delay_ms === 'number' && retry.delay_ms >= 75 && retry.delay_ms <= 125, `jittered delay ${retry.delay_ms}`);
  assert.equal(retry.component, '@bootifyjs/native-events', 'written through logger.child()');

  // The first letter is a warning; more within 10 s are debug records
  // (an outage can dead-letter every event), counted by the next warning.
  const letters = lines.filter((l) => l.msg === 'handler gave up; event dead-lettered');
  assert.deepEqual(
    letters.map((l) => [l.level, l.type, l.cause, l.attempts, l.error, l.more_since_last]),
    [
      [WARN, 'audit', 'non-retryable error', 1, 'malformed', 0],
      [DEBUG, 'charge', 'retries exhausted', 2, 'card declined', undefined],
    ],
  );
  assert.equal(typeof letters[0].dead_letter_id, 'number');

  const panic = find(lines, 'worker thread panicked; its deliveries were put back and it carries on')!;
  assert.equal(panic.level, ERROR);
  assert.equal(panic.target, 'events::worker');
  assert.equal(typeof panic.worker, 'number');

  const scaled = lines.filter((l) => l.msg === 'worker pool scaled');
  assert.deepEqual(
    scaled.map((l) => [l.level, l.workers, l.started]),
    [
      [INFO, 2, 2],
      [INFO, 3, 1],
    ],
  );
  assert.ok(lines.some((l) => l.msg === 'worker started' && l.level === DEBUG));
  const finished = find(lines, 'shutdown finished');
  assert.ok(finished, 'the shutdown report');
  assert.equal(finished.drained, report.drained);
  assert.equal(finished.remaining, 0);
  assert.equal(finished.inFlightAborted, 0);
  assert.ok(find(lines, 'workers and retry timer stopped'));
});

/** One event whose handler fails every time (retried once, then dead-lettered), on a bus logging to `logger`. */
async function failOnce(logger: LoggerLike): Promise<void> {
  const bus = new BufferedEventBusService({ retryAttempts: 1, retryDelays: [100], logger });
  await bus.initialize();
  bus.registerHandler('x', () => {
    throw new Error('no');
  });
  await bus.emitEvent('x', {});
  await settled(bus, 1);
  await bus.shutdown();
}

test("the logger's level decides what the core keeps; BOOTIFY_EVENTS_LOG overrides it", async () => {
  const quiet = pinoLines('warn');
  await failOnce(quiet.logger);
  assert.deepEqual(
    quiet.lines.map((l) => l.msg),
    ['handler gave up; event dead-lettered'],
    'warn and above only',
  );

  const loud = pinoLines('trace');
  process.env.BOOTIFY_EVENTS_LOG = 'error,events::retry=debug';
  try {
    await failOnce(loud.logger);
  } finally {
    delete process.env.BOOTIFY_EVENTS_LOG;
  }
  assert.deepEqual(
    loud.lines.map((l) => l.msg),
    ['retry scheduled'],
    'only what the directives keep',
  );
});

test('a bad BOOTIFY_EVENTS_LOG or logger is INVALID_CONFIG naming it', () => {
  process.env.BOOTIFY_EVENTS_LOG = 'events::journal=loud';
  try {
    assert.throws(
      () => new BufferedEventBusService({}),
      (err: { code?: string; message: string; details?: { field?: string } }) =>
        err.code === 'INVALID_CONFIG' && err.details?.field === 'BOOTIFY_EVENTS_LOG' && /BOOTIFY_EVENTS_LOG.*events::journal=loud/.test(err.message),
    );
  } finally {
    delete process.env.BOOTIFY_EVENTS_LOG;
  }
  const bad = [{ info() {} }, 'console', null, new Proxy({}, { get: () => { throw new Error('trap'); } })];
  for (const logger of bad) {
    assert.throws(
      () => new BufferedEventBusService({ logger } as unknown as BufferedEventConfigInput),
      (err: { code?: string; message: string; details?: { field?: string } }) =>
        err.code === 'INVALID_CONFIG' && err.details?.field === 'logger' && /logger/.test(err.message),
      String(typeof logger),
    );
  }
  const bus = new BufferedEventBusService({ config: { workerCount: 1 }, logger: console });
  assert.equal(bus.getConfig().workerCount, 1);
  const nested = new BufferedEventBusService({ config: { workerCount: 1, logger: console } });
  assert.equal(nested.getConfig().workerCount, 1);
  assert.equal('logger' in bus.getConfig(), false, 'the logger is not configuration');
});

test('a logger whose methods throw never reaches the bus, which keeps handling events', async () => {
  let calls = 0;
  const hostile: LoggerLike = {
    error: () => {
      calls++;
      throw new Error('logger down');
    },
    warn: () => {
      calls++;
      throw 'a string';
    },
    info: () => {
      calls++;
      throw null;
    },
    debug: () => {
      calls++;
      throw new Error('logger down');
    },
    child: () => {
      throw new Error('no child');
    },
  };
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const bus = new BufferedEventBusService({ retryAttempts: 0, logger: hostile });
    await bus.initialize();
    let handled = 0;
    bus.registerHandler('x', (e: { fail?: boolean }) => {
      if (e.fail) throw new Error('no');
      handled++;
    });
    await bus.emitEvent('x', { fail: true });
    for (let i = 0; i < 20; i++) await bus.emitEvent('x', {});
    await settled(bus, 21);
    await bus.shutdown();
    assert.equal(handled, 20);
    assert.ok(calls >= 2, 'the logger was called');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(warnings.filter((w) => /the logger given to the event bus threw/.test(w)).length, 1, 'said once');
  } finally {
    process.off('warning', onWarning);
  }
});

test('a full queue is logged when it starts, not once per refused emission', async () => {
  const { logger, lines } = pinoLines('info');
  const bus = new BufferedEventBusService({ concurrency: 1, maxQueueSize: 100, fallbackToSync: false, logger });
  await bus.initialize();
  const release = await blockWindow(bus);
  bus.registerHandler('x', () => {});
  let refused = 0;
  for (let i = 0; i < 400; i++) {
    await bus.emitEvent('x', { i }).catch((err: { code?: string }) => {
      if (err.code === 'QUEUE_FULL') refused++;
    });
  }
  assert.ok(refused > 200, `${refused} refused`);
  release();
  await bus.shutdown();
  const full = lines.filter((l) => l.target === 'events::queue');
  assert.equal(full.length, 1, 'one record for the whole episode');
  assert.equal(full[0].level, WARN);
  assert.equal(full[0].msg, 'queue full; emissions are refused with QUEUE_FULL');
  assert.equal(full[0].limit, 'maxQueueSize');
});

test('a logger that emits on the bus it logs for does not recurse', async () => {
  let warned = 0;
  let bus: BufferedEventBusService | undefined;
  const logger: LoggerLike = {
    error() {},
    info() {},
    debug() {},
    warn() {
      warned++;
      // An audit trail on the same bus: it is full too, and overflows again.
      void bus?.emitEvent('audit', { warned }).catch(() => {});
    },
  };
  bus = new BufferedEventBusService({ concurrency: 1, maxQueueSize: 100, fallbackToSync: false, logger });
  await bus.initialize();
  const release = await blockWindow(bus);
  bus.registerHandler('x', () => {});
  bus.registerHandler('audit', () => {});
  for (let i = 0; i < 150; i++) await bus.emitEvent('x', { i }).catch(() => {});
  assert.equal(warned, 1, 'the overflow inside the logger was counted, not logged through it again');
  release();
  await bus.shutdown();
});

test('a worker isolate that dies is logged with what happened to its deliveries', async () => {
  const { logger, lines } = pinoLines('info');
  const bus = new BufferedEventBusService({ workerIsolates: 1, retryAttempts: 0, logger });
  await bus.initialize();
  bus.on('worker_error', () => {});
  await bus.registerWorkerHandler('job', path.join(__dirname, 'fixtures', 'isolate-handlers.js'), { exportName: 'poison' });
  await bus.emitEvent('job', { poison: true });
  await settled(bus, 1);
  await waitFor(() => lines.some((l) => l.target === 'events::isolate'), 'the isolate record');
  await bus.shutdown();
  const died = lines.find((l) => l.target === 'events::isolate')!;
  assert.equal(died.level, ERROR);
  assert.equal(died.msg, 'worker isolate died; it is replaced after its restart delay');
  assert.equal(died.code, 'ISOLATE_DIED');
  assert.equal(died.exitCode, 7);
  assert.equal(died.charged, 1);
});

test('the journal logs its recovery', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootify-log-journal-'));
  try {
    // Never started: a one-place window held by a handler that never settles.
    const first = new BufferedEventBusService({ durability: 'process', journal: { dir }, concurrency: 1 });
    await first.initialize();
    first.registerHandler('later', () => new Promise(() => {}));
    for (let i = 0; i < 4; i++) await first.emitEvent('later', { i });
    await first.shutdown({ timeout: 50 });
    const { logger, lines } = pinoLines('info');
    const second = new BufferedEventBusService({ durability: 'process', journal: { dir }, logger });
    await second.initialize();
    await second.shutdown();
    const opened = find(lines, 'journal opened and replayed');
    assert.ok(opened);
    assert.equal(opened.target, 'events::journal');
    assert.equal(opened.dir, dir);
    assert.equal(opened.events, 4, 'one aborted in flight, three never started');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs a script in a child Node with the package loaded. */
function child(script: string, env: NodeJS.ProcessEnv = {}) {
  const root = path.resolve(__dirname, '..');
  const code = `const { BufferedEventBusService } = require(${JSON.stringify(root)});\n${script}`;
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete e.NODE_TEST_CONTEXT;
  if (env.BOOTIFY_EVENTS_LOG === undefined) delete e.BOOTIFY_EVENTS_LOG;
  return spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000, env: e });
}

const failingTwice = `
  (async () => {
    const bus = new BufferedEventBusService({ retryAttempts: 1, retryDelays: [100] });
    await bus.initialize();
    bus.registerHandler('x', () => { throw new Error('no'); });
    await bus.emitEvent('x', {});
    await bus.emitEvent('x', {});
    while (bus.getMetrics().queueMetrics.failed < 2) await new Promise((r) => setTimeout(r, 5));
    await bus.shutdown();
  })();
`;

test('without a logger each kind of warning goes to process.emitWarning once; BOOTIFY_EVENTS_LOG prints more', () => {
  const plain = child(failingTwice);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(plain.stderr.match(/handler gave up; event dead-lettered/g)?.length, 1, plain.stderr);
  assert.match(plain.stderr, /BOOTIFY_EVENTS_WARN/);
  assert.doesNotMatch(plain.stderr, /retry scheduled/);

  const debug = child(failingTwice, { BOOTIFY_EVENTS_LOG: 'debug' });
  assert.equal(debug.status, 0, debug.stderr);
  const records = debug.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; target: string });
  assert.equal(records.filter((r) => r.msg === 'retry scheduled').length, 2);
  assert.equal(records.filter((r) => r.msg === 'handler gave up; event dead-lettered').length, 2);
  assert.ok(records.some((r) => r.level === 'debug' && r.target === 'events::worker'));
});

test('a bus with a logger never keeps the process alive', () => {
  const r = child(`
    const logger = { error() {}, warn() {}, info() {}, debug() {} };
    const bus = new BufferedEventBusService({ logger, retryAttempts: 0 });
    bus.initialize().then(async () => {
      bus.registerHandler('x', () => { throw new Error('no'); });
      await bus.emitEvent('x', {});
      setTimeout(() => console.log('still here'), 50).unref();
    });
    process.on('exit', () => console.log('exited'));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /exited/);
});

// Durable buses: a process killed with SIGKILL in the middle of a load,
// of its retries, with dead letters, restarted on the same journal,
// handles every event whose emitEvent had resolved; a clean shutdown
// leaves exactly what its report says; the journal is bounded and locked.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BufferedEventBusService, type BufferedEvent } from '..';
import { deferred, listenToIsolates, rejectsWithCode, waitFor } from './helpers';

const app = path.join(__dirname, 'fixtures', 'durable-app.js');
const isolateHandlers = path.join(__dirname, 'fixtures', 'isolate-handlers.js');

function tempDir(t: { after(fn: () => void): void }, name: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bfy-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0) : [];
}

/** `id retryCount` lines of a handled.log, as id -> retry counts in order. */
function deliveries(file: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of lines(file)) {
    const [id, retry] = line.split(' ');
    out.set(id, [...(out.get(id) ?? []), Number(retry)]);
  }
  return out;
}

interface RecoverOutput {
  journal: { recovered: number; recoveredWaiting: number; truncated: number; corruptions: unknown[] };
  letters: { id: string; n: number; attempts: number }[];
  remaining: number;
  aborted: number;
}

async function crashAndRecover(t: { after(fn: () => void): void }, durability: 'process' | 'fsync'): Promise<void> {
  const journal = tempDir(t, `journal-${durability}`);
  const first = tempDir(t, 'run1');
  const second = tempDir(t, 'run2');
  const child = spawn(process.execPath, [app, journal, durability, 'emit', first], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  // Killed in the middle of the load, with retries waiting and dead
  // letters already made (an 'always' event ran its second attempt).
  await waitFor(
    () => lines(path.join(first, 'accepted.log')).length >= 3000 && lines(path.join(first, 'handled.log')).some((l) => l.endsWith(' 1')),
    'a loaded child with retries and dead letters',
    60_000,
  );
  // The journal writer records the dead letter a moment after its attempt
  // fails; on a loaded machine that moment can pass 50 ms.
  await new Promise((r) => setTimeout(r, 250));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');

  const run = spawnSync(process.execPath, [app, journal, durability, 'recover', second], { encoding: 'utf8', timeout: 90_000 });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim().split('\n').pop() as string) as RecoverOutput;

  const accepted = lines(path.join(first, 'accepted.log')).map((l) => l.split(' '));
  const before = deliveries(path.join(first, 'handled.log'));
  const after = deliveries(path.join(second, 'handled.log'));
  const missing = accepted.filter(([id]) => !before.has(id) && !after.has(id));
  assert.deepEqual(missing, [], 'every accepted event was handled in one run or the other');
  const backlog = accepted.filter(([id]) => !before.has(id)).length;
  assert.ok(backlog > 100, `${backlog} accepted events had not started at the kill; the restart ran them`);
  const lettered = new Set(out.letters.map((l) => l.id));
  const lostLetters = accepted.filter(([id, n]) => Number(n) % 50 === 7 && !lettered.has(id));
  assert.deepEqual(lostLetters, [], "every accepted 'always' event ends in the dead-letter queue");
  assert.ok(out.letters.some((l) => !after.has(l.id)), 'dead letters made before the kill came back as they were');
  const twice = [...after.keys()].filter((id) => before.has(id)).length;
  assert.ok(out.journal.recovered > 0, 'the restart recovered events');
  assert.ok(twice <= out.journal.recovered, `${twice} events ran in both runs; the bus reported at most ${out.journal.recovered}`);
  // A retry waiting at the kill came back as the attempt it was to be.
  const resumed = [...after.entries()].filter(([id, retries]) => before.get(id)?.[0] === 0 && retries[0] === 1);
  assert.ok(resumed.length > 0, 'some retry kept its attempt count across the restart');
  assert.equal(out.journal.recoveredWaiting, 0);
  assert.deepEqual(out.journal.corruptions, []);
  assert.equal(out.remaining + out.aborted, 0);
}

test("'process': a SIGKILL mid-load loses no accepted event, retries and dead letters come back", async (t) => {
  await crashAndRecover(t, 'process');
});

test("'fsync': a SIGKILL mid-load loses no accepted event, retries and dead letters come back", async (t) => {
  await crashAndRecover(t, 'fsync');
});

function durableBus(dir: string, config: Record<string, unknown> = {}): BufferedEventBusService {
  return new BufferedEventBusService({ durability: 'process', journal: { dir, segmentMB: 1, maxDiskMB: 8 }, ...config });
}

test('a clean shutdown leaves a journal that replays exactly what its report says was not finished', async (t) => {
  const dir = tempDir(t, 'clean');
  const bus = durableBus(dir, { concurrency: 2 });
  const started: string[] = [];
  bus.registerHandler('job', (e: BufferedEvent) => {
    started.push(e.id);
    return new Promise(() => {});
  });
  await bus.initialize();
  for (let n = 0; n < 10; n++) await bus.emitEvent('job', { n });
  await waitFor(() => started.length === 2, 'two handlers running');
  const report = await bus.shutdown({ timeout: 50 });
  const unfinished = [...report.remaining, ...report.inFlightAborted].map((e) => e.id).sort();
  assert.equal(unfinished.length, 10);

  // No handler yet: the recovered events wait, and a shutdown reports them.
  const waiting = durableBus(dir);
  await waiting.initialize();
  assert.equal(waiting.getMetrics().journal?.recoveredWaiting, 10);
  const waited = await waiting.shutdown();
  assert.deepEqual(waited.remaining.map((e) => e.id).sort(), unfinished);

  const again = durableBus(dir);
  await again.initialize();
  const handled: string[] = [];
  again.registerHandler('job', (e: BufferedEvent) => void handled.push(e.id));
  await waitFor(() => handled.length === 10, 'a handler registered after initialize() sees the recovered events');
  assert.deepEqual(handled.sort(), unfinished);
  await waitFor(() => again.getMetrics().queueMetrics.succeeded === 10, 'settled');
  await again.shutdown();
  const third = durableBus(dir);
  await third.initialize();
  assert.equal(third.getMetrics().journal?.recoveredWaiting, 0, 'nothing is left once they finished');
  await third.shutdown();
});

test('recovered events keep their id, payload, priority and correlation id; dead letters replay after a restart', async (t) => {
  const dir = tempDir(t, 'shape');
  const bus = durableBus(dir, { retryAttempts: 0 });
  bus.registerHandler('fail', () => {
    throw new Error('no');
  });
  bus.registerHandler('later', () => new Promise(() => {}));
  await bus.initialize();
  const when = new Date('2026-01-02T03:04:05Z');
  const id = await bus.emitEvent('later', { when, tags: new Set(['a']), n: 1 }, { priority: 'critical', correlationId: 'req-7' });
  await bus.emitEvent('fail', { n: 2 });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'a dead letter');
  await bus.shutdown({ timeout: 20 });

  const again = durableBus(dir);
  await again.initialize();
  const letters = again.getDeadLetterQueue();
  assert.equal(letters.length, 1);
  assert.deepEqual(letters[0].payload, { n: 2 });
  assert.equal(letters[0].lastError.message, 'no');
  const seen = deferred<BufferedEvent>();
  again.registerHandler('later', (e: BufferedEvent) => seen.resolve(e));
  const e = await seen.promise;
  assert.equal(e.id, id);
  assert.equal(e.priority, 'critical');
  assert.equal(e.correlationId, 'req-7');
  const payload = e.payload as { when: Date; tags: Set<string> };
  assert.ok(payload.when instanceof Date && payload.when.getTime() === when.getTime(), 'a Date survives');
  assert.ok(payload.tags instanceof Set && payload.tags.has('a'), 'a Set survives');
  const replayed = deferred<number>();
  again.registerHandler('fail', (ev: BufferedEvent<{ n: number }>) => replayed.resolve(ev.payload.n));
  assert.equal(again.replayDeadLetter(letters[0].id), 1);
  assert.equal(await replayed.promise, 2);
  await waitFor(() => again.getMetrics().queueMetrics.inFlight === 0, 'the replay settled');
  await again.shutdown();
  const third = durableBus(dir);
  await third.initialize();
  assert.equal(third.getDeadLetterQueue().length, 0, 'a replayed dead letter is gone for good');
  await third.shutdown();
});

test('a restart with only dead letters left brings each back under its id', async (t) => {
  const dir = tempDir(t, 'letters');
  const bus = durableBus(dir, { retryAttempts: 0 });
  bus.registerHandler('fail', () => {
    throw new Error('no');
  });
  await bus.initialize();
  for (const n of [1, 2, 3]) await bus.emitEvent('fail', { n });
  await waitFor(() => bus.getDeadLetterQueue().length === 3, 'three dead letters');
  const last = bus.getDeadLetterQueue()[2].id;
  assert.equal(bus.removeDeadLetter(last), true);
  const before = bus.getDeadLetterQueue().map((d) => [d.id, (d.payload as { n: number }).n]);
  await bus.shutdown();
  const again = durableBus(dir, { retryAttempts: 0 });
  again.registerHandler('fail', () => {
    throw new Error('again');
  });
  await again.initialize();
  assert.deepEqual(
    again.getDeadLetterQueue().map((d) => [d.id, (d.payload as { n: number }).n]),
    before,
  );
  await again.emitEvent('fail', { n: 4 });
  await waitFor(() => again.getDeadLetterQueue().length === 3, 'a new dead letter');
  assert.ok(again.getDeadLetterQueue()[2].id > last, 'ids used before the restart are not given out again');
  await again.shutdown();
});

test('events of types handled in worker isolates are journaled as the isolates read them, and come back', async (t) => {
  const dir = tempDir(t, 'isolates');
  const reports = listenToIsolates(t);
  const bus = durableBus(dir, { workerIsolates: 1, concurrency: 1 });
  await bus.initialize();
  await bus.registerWorkerHandler('job', isolateHandlers, { exportName: 'burn' });
  const when = new Date('2026-03-04T05:06:07Z');
  for (let n = 0; n < 4; n++) await bus.emitEvent('job', { n, ms: n === 0 ? 2000 : 1, when });
  const report = await bus.shutdown({ timeout: 50 });
  assert.equal(report.remaining.length + report.inFlightAborted.length, 4);
  const again = durableBus(dir, { workerIsolates: 1 });
  await again.initialize();
  await again.registerWorkerHandler('job', isolateHandlers, { exportName: 'burn' });
  await waitFor(() => new Set(reports.map((r) => r.n)).size === 4, 'all four ran in an isolate', 30_000);
  assert.ok(reports.every((r) => r.isDate), 'the payload kept its Date through the journal');
  await again.shutdown({ timeout: 100 });
});

test('one bus per journal directory: a second opener gets JOURNAL_LOCKED, in this process or another', async (t) => {
  const dir = tempDir(t, 'lock');
  const first = durableBus(dir);
  await first.initialize();
  const second = durableBus(dir);
  await rejectsWithCode(() => second.initialize(), 'JOURNAL_LOCKED', dir);
  const other = spawnSync(
    process.execPath,
    ['-e', `new (require(${JSON.stringify(path.join(__dirname, '..'))}).BufferedEventBusService)({ durability: 'process', journal: { dir: ${JSON.stringify(dir)} } }).initialize().catch((e) => { console.log(e.code); process.exit(3); })`],
    { encoding: 'utf8' },
  );
  assert.equal(other.status, 3);
  assert.equal(other.stdout.trim(), 'JOURNAL_LOCKED');
  await first.shutdown();
  await second.initialize();
  assert.ok(second.isReady(), 'the directory is free once its bus shut down');
  await second.shutdown();
});

test('at journal.maxDiskMB emissions reject with QUEUE_FULL naming the journal, or run inline with fallbackToSync', async (t) => {
  for (const fallbackToSync of [false, true]) {
    const dir = tempDir(t, `full-${fallbackToSync}`);
    const bus = durableBus(dir, { fallbackToSync, concurrency: 1, maxQueueSize: 100_000, maxEventSize: 8192 });
    const release = deferred();
    bus.registerHandler('big', () => release.promise);
    await bus.initialize();
    const text = 'y'.repeat(4000);
    let refused: unknown;
    let inline: Promise<string> | undefined;
    let accepted = 0;
    while (accepted < 5000) {
      const emitted = bus.emitEvent('big', { text });
      // Run inline, it waits for the blocked handler: not awaited here.
      if (fallbackToSync && bus.getMetrics().journal?.inlineFull === 1) {
        inline = emitted;
        break;
      }
      try {
        await emitted;
        accepted++;
      } catch (err) {
        refused = err;
        break;
      }
    }
    const j = bus.getMetrics().journal;
    assert.ok(j !== undefined && accepted > 100 && accepted < 5000, `${accepted} accepted before the bound`);
    if (fallbackToSync) {
      assert.equal(refused, undefined);
      assert.equal(j.inlineFull, 1);
    } else {
      assert.equal((refused as { code: string }).code, 'QUEUE_FULL');
      assert.match((refused as Error).message, /journal is full \(journal\.maxDiskMB\)/);
      assert.equal(j.rejectedFull, 1);
    }
    assert.ok(j.diskBytes <= j.maxDiskBytes, `${j.diskBytes} bytes on disk, bound ${j.maxDiskBytes}`);
    const health = await bus.getHealthStatus();
    assert.equal(health.checks.find((c) => c.name === 'journal')?.status, 'fail');
    release.resolve();
    if (inline !== undefined) await inline;
    await waitFor(() => bus.getMetrics().queueMetrics.size === 0 && bus.getMetrics().queueMetrics.inFlight === 0, 'drained', 30_000);
    await waitFor(() => (bus.getMetrics().journal?.segments ?? 99) <= 3, 'settled segments deleted', 30_000);
    await bus.shutdown();
  }
});

/** CRC-32 (IEEE), to forge a journal record that checks out. */
function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort()
    .map((f) => path.join(dir, f));
}

test('a damaged journal: the middle is reported and skipped, an undecodable event becomes a dead letter', async (t) => {
  const dir = tempDir(t, 'damage');
  const bus = durableBus(dir, { concurrency: 1 });
  bus.registerHandler('job', () => new Promise(() => {}));
  await bus.initialize();
  for (const n of [1, 2, 3]) await bus.emitEvent('job', { n, marker: `event-${n}` });
  await bus.shutdown({ timeout: 20 });
  const file = segments(dir).find((f) => readFileSync(f).includes('event-2')) as string;
  const buf = readFileSync(file);
  const frames: number[] = [];
  for (let at = 32; buf.readUInt32LE(at) !== 0; at += 8 + buf.readUInt32LE(at)) frames.push(at);
  // Event 1's envelope rewritten, its checksum fixed: it decodes no more.
  const one = frames.find((at) => buf.subarray(at, at + 8 + buf.readUInt32LE(at)).includes('event-1')) as number;
  // At the payload itself: a '{' byte can also stand in the record's binary header (its timestamp).
  buf.write('!', buf.indexOf('{"n":1', one));
  buf.writeUInt32LE(crc32(buf.subarray(one + 8, one + 8 + buf.readUInt32LE(one))), one + 4);
  // Event 2's record flipped, with event 3's after it: damage in the middle.
  buf[buf.indexOf('event-2')] ^= 1;
  writeFileSync(file, buf);

  const again = durableBus(dir);
  const errors: { code: string; details?: { corruptions: unknown[] } }[] = [];
  again.on('journal_error', (e) => errors.push(e as never));
  const seen: number[] = [];
  again.registerHandler('job', (e: BufferedEvent<{ n: number }>) => void seen.push(e.payload.n));
  await again.initialize();
  await waitFor(() => seen.length === 1 && again.getDeadLetterQueue().length === 1, 'the intact event ran, the other was dead-lettered');
  assert.deepEqual(seen, [3]);
  const j = again.getMetrics().journal;
  assert.equal(j?.corruptions.length, 1);
  assert.equal(errors[0]?.code, 'JOURNAL_ERROR');
  assert.equal(j?.undecodable, 1);
  const letter = again.getDeadLetterQueue()[0];
  assert.equal(letter.lastError.name, 'JournalDecodeError');
  await again.shutdown();
});

test('a payload that throws when the journal serialises it is refused with INVALID_PAYLOAD; the bus carries on', async (t) => {
  const dir = tempDir(t, 'hostile');
  const bus = durableBus(dir);
  const seen: number[] = [];
  bus.registerHandler('job', (e: BufferedEvent<{ n: number }>) => void seen.push(e.payload.n));
  await bus.initialize();
  let reads = 0;
  const tricky = {
    get n(): number {
      // Read once to check the payload, then again to serialise it.
      if (++reads > 1) throw new Error('gotcha');
      return 1;
    },
  };
  await rejectsWithCode(() => bus.emitEvent('job', tricky), 'INVALID_PAYLOAD', 'gotcha');
  await bus.emitEvent('job', { n: 2 });
  await waitFor(() => seen.length === 1, 'the next event ran');
  assert.deepEqual(seen, [2]);
  await bus.shutdown();
});

test('durable configuration is validated: the mode, a directory, segment and disk sizes', async () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ durability: 'disk' }, /durability must be one of 'memory', 'process', 'fsync', got "disk"/],
    [{ durability: 'fsync' }, /journal\.dir must name a directory when durability is 'fsync'/],
    [{ durability: 'process', journal: { dir: 7 } }, /journal\.dir must be a string/],
    [{ journal: { dir: '/tmp/x', maxDiskMB: 8, segmentMB: 5 } }, /journal\.segmentMB \(5\) must be at most half of journal\.maxDiskMB \(8\)/],
    [{ journal: { segmentMB: 0 } }, /journal\.segmentMB must be a number between 1 and 4096/],
  ];
  for (const [config, message] of bad) {
    await rejectsWithCode(() => new BufferedEventBusService(config), 'INVALID_CONFIG');
    assert.throws(() => new BufferedEventBusService(config), message);
  }
  const spread = new BufferedEventBusService({ ...new BufferedEventBusService().getConfig(), durability: 'memory' });
  assert.equal(spread.getConfig().durability, 'memory');
  assert.equal(spread.getMetrics().journal, undefined);
});

test('a disk that fills up: emissions reject with JOURNAL_ERROR, health fails, never accepted silently', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bfy-enospc-'));
  // A real full disk: a 3 MB tmpfs (needs root, as CI runs).
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir], { encoding: 'utf8' });
  t.after(() => {
    if (mount.status === 0) spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  if (mount.status !== 0) {
    t.skip(`cannot mount a small tmpfs to fill (run as root): ${mount.stderr.trim()}`);
    return;
  }
  for (const durability of ['process', 'fsync'] as const) {
    const journal = path.join(dir, durability);
    const bus = new BufferedEventBusService({
      durability,
      journal: { dir: journal, segmentMB: 1, maxDiskMB: 64 },
      concurrency: 1,
      maxQueueSize: 100_000,
      maxEventSize: 8192,
    });
    bus.registerHandler('big', () => new Promise(() => {}));
    await bus.initialize();
    let failure: unknown;
    let accepted = 0;
    while (failure === undefined && accepted < 5000) {
      try {
        await bus.emitEvent('big', { text: 'z'.repeat(4000) });
        accepted++;
      } catch (err) {
        failure = err;
      }
    }
    assert.equal((failure as { code?: string }).code, 'JOURNAL_ERROR', String(failure));
    assert.match((failure as Error).message, /No space left on device/);
    await rejectsWithCode(() => bus.emitEvent('big', { text: 'after' }), 'JOURNAL_ERROR');
    assert.match(String(bus.getMetrics().journal?.failure), /No space left/);
    const health = await bus.getHealthStatus();
    assert.equal(health.status, 'unhealthy');
    assert.equal(health.checks.find((c) => c.name === 'journal')?.status, 'fail');
    const closing: unknown[] = [];
    bus.on('journal_error', (err) => closing.push(err));
    const report = await bus.shutdown({ timeout: 10 });
    assert.ok(report.remaining.length + report.inFlightAborted.length > 0);
    assert.equal((closing[0] as { code?: string }).code, 'JOURNAL_ERROR', 'the shutdown says the journal is short');
    rmSync(journal, { recursive: true, force: true });
  }
});

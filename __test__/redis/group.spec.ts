// Several processes on one bus over a real redis-server (REDIS_URL, from
// scripts/with-redis.sh): child processes that handle, one that only
// emits, and one killed with SIGKILL.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BufferedEventBusService } from '../..';
import { waitFor } from '../helpers';

const app = path.join(__dirname, '..', 'fixtures', 'redis-node.js');
const skip = process.env.REDIS_URL ? false : 'REDIS_URL is not set (run through scripts/with-redis.sh)';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-group-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Lines of every `<prefix>-<pid>.log`, by pid. */
function logsOf(dir: string, prefix: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const f of readdirSync(dir)) {
    const m = new RegExp(`^${prefix}-(\\d+)\\.log$`).exec(f);
    if (m) out.set(Number(m[1]), lines(path.join(dir, f)));
  }
  return out;
}

function emit(dir: string, name: string, count: number, priority = 'normal', plain = false): { emitted: number; taken: number } {
  const run = spawnSync(process.execPath, [app, 'emit', dir, name, String(count), priority, ...(plain ? ['plain'] : [])], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

function consumers(t: { after(fn: () => void): void }, dir: string, name: string, n: number, ms: number, claimIdleMs = 30_000): ChildProcess[] {
  const kids = Array.from({ length: n }, () =>
    spawn(process.execPath, [app, 'consume', dir, name, String(ms), String(claimIdleMs)], { stdio: ['ignore', 'inherit', 'inherit'] }),
  );
  t.after(() => kids.forEach((k) => k.exitCode === null && k.signalCode === null && k.kill('SIGKILL')));
  return kids;
}

async function stop(kids: ChildProcess[]): Promise<void> {
  await Promise.all(
    kids.map(
      (k) =>
        new Promise<void>((resolve) => {
          if (k.exitCode !== null || k.signalCode !== null) return resolve();
          k.once('exit', () => resolve());
          k.kill('SIGTERM');
        }),
    ),
  );
}

test('three processes share one bus fed by a fourth that only emits: each event handled once, with retries and dead letters', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const name = `group-${process.pid}`;
  // Queued before any process handles: low first, then critical.
  const low = emit(dir, name, 150, 'low');
  emit(dir, name, 150, 'critical');
  assert.deepEqual([low.emitted, low.taken], [150, 0], 'a process that only emits adds events and takes none');
  const emitted = lines(path.join(dir, 'emitted.log')).map((l) => l.split(' '));
  const kids = consumers(t, dir, name, 3, 2);
  // 'always' events (n % 100 === 7) end as dead letters, the rest finish.
  const finishing = emitted.filter(([, n]) => Number(n) % 100 !== 7).map(([id]) => id);
  const done = (): string[] => [...logsOf(dir, 'done').values()].flat();
  await waitFor(() => done().length >= finishing.length, `${finishing.length} events finished`, 60_000);
  // The dead letters' last attempts, before the processes stop.
  const lettered = emitted.filter(([, n]) => Number(n) % 100 === 7).map(([id]) => id);
  const attempts = (id: string): number => [...logsOf(dir, 'handled').values()].flat().filter((l) => l.startsWith(`${id} `)).length;
  // Dead letters are the group's: any process sees, replays and removes them.
  const admin = new BufferedEventBusService({ backend: { type: 'redis', url: process.env.REDIS_URL as string, name } });
  t.after(() => admin.shutdown());
  await admin.initialize();
  const letterIds = (): string[] => admin.getDeadLetterQueue().map((l) => l.event.id).sort();
  await waitFor(() => letterIds().join() === [...lettered].sort().join(), 'the failing events in the group\'s dead letters', 30_000);
  assert.ok(lettered.every((id) => attempts(id) === 3), 'each ran three times (retryAttempts 2)');
  const [first, second] = admin.getDeadLetterQueue();
  assert.equal(first.attempts, 3);
  assert.equal(first.lastError.message, 'fails always');
  // The first 150 emitted were low, the rest critical.
  const lowIds = new Set(emitted.slice(0, 150).map(([id]) => id));
  assert.equal(first.event.priority, lowIds.has(first.event.id) ? 'low' : 'critical');
  assert.equal(admin.replayDeadLetter(first.id), 1, 'replayed from a process that does not handle it');
  await waitFor(() => attempts(first.event.id) === 6 && letterIds().filter((id) => id === first.event.id).length === 1 && admin.getDeadLetterQueue().every((l) => l.id !== first.id), 'the replay run again by the group and lettered anew', 30_000);
  assert.equal(admin.removeDeadLetter(second.id), true);
  // Gone from Redis itself, not only from this process's view.
  const inRedis = (): string => spawnSync('redis-cli', ['-u', process.env.REDIS_URL as string, 'XRANGE', `{bootify:${name}}:dead`, '-', '+'], { encoding: 'utf8' }).stdout;
  await waitFor(() => !inRedis().includes(second.event.id), 'the removed letter gone for everyone', 10_000);
  assert.ok(inRedis().includes(first.event.id), 'the replayed event lettered anew');
  await stop(kids);

  const handled = logsOf(dir, 'handled');
  const firsts = new Map<string, number>();
  for (const l of [...handled.values()].flat()) {
    const [id, , retry] = l.split(' ');
    if (retry === '0') firsts.set(id, (firsts.get(id) ?? 0) + 1);
  }
  assert.deepEqual(
    emitted.filter(([id]) => firsts.get(id) !== (id === first.event.id ? 2 : 1)).map(([id]) => [id, firsts.get(id) ?? 0]),
    [],
    'every event started exactly once across the group (the replayed one twice)',
  );
  assert.equal(new Set(done()).size, done().length, 'and finished at most once');
  assert.deepEqual(finishing.filter((id) => !done().includes(id)), [], 'every event that can finish did');
});

test('a consumer reads by priority: critical events emitted after low ones start first', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const name = `prio-${process.pid}`;
  emit(dir, name, 150, 'low', true);
  emit(dir, name, 150, 'critical', true);
  const emitted = lines(path.join(dir, 'emitted.log')).map((l) => l.split(' ')[0]);
  const kids = consumers(t, dir, name, 1, 2);
  const done = (): string[] => [...logsOf(dir, 'done').values()].flat();
  await waitFor(() => done().length >= emitted.length, 'every event handled', 60_000);
  await stop(kids);
  const order = [...logsOf(dir, 'handled').values()].flat().map((l) => l.split(' ')[1]);
  // Only aging (a lower lane passed over for agingMs gets a place) lets a
  // low event in before the critical ones are done.
  const criticalFirst = order.slice(0, 150).filter((p) => p === 'critical').length;
  assert.ok(criticalFirst >= 130, `${criticalFirst} of the first 150 events started were critical`);
});

test('a process killed with SIGKILL mid-load leaves its events to the others: nothing is lost', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const name = `kill-${process.pid}`;
  emit(dir, name, 400, 'normal', true);
  const ids = lines(path.join(dir, 'emitted.log')).map((l) => l.split(' ')[0]);
  // Slow handlers and a short claim idle time: the victim holds events when it dies.
  const kids = consumers(t, dir, name, 3, 20, 1000);
  const done = (): string[] => [...logsOf(dir, 'done').values()].flat();
  const victim = kids[0];
  await waitFor(() => done().length >= 60 && (logsOf(dir, 'done').get(victim.pid as number) ?? []).length >= 10, 'the group, the victim included, under load', 60_000);
  victim.kill('SIGKILL');
  await new Promise((r) => victim.once('exit', r));
  await waitFor(() => new Set(done()).size >= ids.length, 'every event finished by the survivors', 60_000);
  const survivorsDone = new Set(kids.slice(1).flatMap((k) => logsOf(dir, 'done').get(k.pid as number) ?? []));
  const victimStarted = (logsOf(dir, 'handled').get(victim.pid as number) ?? []).map((l) => l.split(' ')[0]);
  const victimDone = new Set(logsOf(dir, 'done').get(victim.pid as number) ?? []);
  const orphans = victimStarted.filter((id) => !victimDone.has(id));
  assert.ok(orphans.length > 0, 'the victim died holding events');
  assert.deepEqual(orphans.filter((id) => !survivorsDone.has(id)), [], 'the survivors took over and finished what it held');
  assert.deepEqual(ids.filter((id) => !done().includes(id)), [], 'no event was lost');
  await stop(kids.slice(1));
  const exits = [...logsOf(dir, 'exit').values()].flat().map((l) => JSON.parse(l) as { metrics: { reclaimed: number } });
  assert.ok(exits.reduce((n, e) => n + e.metrics.reclaimed, 0) >= orphans.length, 'each takeover is counted');
});

test('a failed handler\'s retry waits in the group, not in its process: killed before it fell due, another process runs it, for that handler alone', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const name = `retry-${process.pid}`;
  const orders = (mailer: string, expect = 0): ChildProcess => {
    const kid = spawn(process.execPath, [app, 'orders', dir, name, mailer, String(expect)], { stdio: ['ignore', 'inherit', 'inherit'] });
    t.after(() => kid.exitCode === null && kid.signalCode === null && kid.kill('SIGKILL'));
    return kid;
  };
  const ready = (kid: ChildProcess): Promise<void> => waitFor(() => lines(path.join(dir, 'ready.log')).includes(String(kid.pid)), 'the process ready', 30_000);
  const ran = (kid: ChildProcess): string[][] => (logsOf(dir, 'ran').get(kid.pid as number) ?? []).map((l) => l.split(' '));
  const redis = (...args: string[]): string => spawnSync('redis-cli', ['-u', process.env.REDIS_URL as string, ...args], { encoding: 'utf8' }).stdout.trim();

  const failing = orders('fail', 20);
  await ready(failing);
  const run = spawnSync(process.execPath, [app, 'emit', dir, name, '20', 'normal', 'plain'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, EVENT_TYPE: 'order' } });
  assert.equal(run.status, 0, run.stderr);
  const ids = lines(path.join(dir, 'emitted.log')).map((l) => l.split(' ')[0]).sort();
  // Retries are due 3 s after the failure (±25 %): it dies well before.
  await waitFor(() => lines(path.join(dir, 'scheduled.log')).includes(String(failing.pid)), 'twenty retries in the group\'s retry set', 30_000);
  failing.kill('SIGKILL');
  await new Promise((r) => failing.once('exit', r));
  assert.equal(redis('ZCARD', `{bootify:${name}}:retries`), '20', 'the retries outlive the process that scheduled them');
  assert.deepEqual(
    ran(failing).map(([key, , retry]) => `${key} ${retry}`).sort(),
    [...Array(20).fill('Audit.handle 0'), ...Array(20).fill('Mailer.handle 0')],
    'the dead process ran each handler once',
  );

  const healthy = orders('ok');
  await ready(healthy);
  await waitFor(() => ran(healthy).length >= 20, 'the retries run by the other process', 30_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    ran(healthy).map(([key, id, retry]) => `${key} ${retry} ${id}`).sort(),
    ids.map((id) => `Mailer.handle 1 ${id}`),
    'only the failed handler ran again, as its first retry; Audit.handle did not run twice',
  );
  await waitFor(() => redis('ZCARD', `{bootify:${name}}:retries`) === '0' && redis('HLEN', `{bootify:${name}}:retry-data`) === '0', 'the retry set and its data emptied', 10_000);
  await stop([healthy]);
});

// The dashboard in a real headless browser: Debian's chromium driven by
// puppeteer-core, against a real Fastify server. Skipped (with the reason)
// when no browser can be had.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import Fastify from 'fastify';
import { type BufferedEvent, NonRetryableError } from '..';
import { startedBus, waitFor } from './helpers';

const { fastifyNativeEvents } = require('@bootifyjs/native-events/fastify') as typeof import('../fastify');

// What this test uses of puppeteer-core. Its own typings need the DOM lib,
// which the other specs are compiled without.
interface Page {
  goto(url: string, options: { waitUntil: 'load'; timeout: number }): Promise<unknown>;
  evaluate(expression: string): Promise<unknown>;
  waitForFunction(expression: string, options: { timeout: number; polling: number }): Promise<unknown>;
  click(selector: string): Promise<void>;
  on(event: 'request', listener: (request: { url(): string }) => void): void;
  on(event: 'pageerror', listener: (error: unknown) => void): void;
  on(event: 'console', listener: (message: { type(): string; text(): string }) => void): void;
  close(): Promise<void>;
}
interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
const puppeteer = require('puppeteer-core') as {
  launch(options: { executablePath: string; headless: boolean; args: string[]; timeout: number }): Promise<Browser>;
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Generous: a loaded two-core machine runs the browser, the server and the bus. */
const UI_TIMEOUT = 60_000;

/** A number the page shows, from the element's data-value ('' before the first poll). */
const metric = (page: Page, name: string): Promise<string> =>
  page.evaluate(`document.querySelector('[data-metric="${name}"]').dataset.value`) as Promise<string>;

/** Waits for `expression` to hold in the page; on a timeout, says what the page showed. */
async function until(page: Page, expression: string): Promise<void> {
  try {
    await page.waitForFunction(expression, { timeout: UI_TIMEOUT, polling: 100 });
  } catch (err) {
    const shown = await page
      .evaluate(`JSON.stringify({ connection: document.getElementById('connection').textContent, deadLetters: document.getElementById('dead-letters-state').textContent, message: document.getElementById('dead-letters-message').textContent })`)
      .catch((e: unknown) => String(e));
    assert.fail(`${(err as Error).message} waiting for ${expression}; the page showed ${String(shown)}`);
  }
}

test('the dashboard shows live figures, lists a dead letter and replays it', { timeout: 240_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no chromium found at ${CHROMIUM}; install it with apt-get install chromium (or set CHROMIUM_PATH)`);
    return;
  }
  const bus = await startedBus(t, { retryAttempts: 0 });
  bus.registerHandler('work', () => new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 4)));
  // Fails the first time it sees an event, then succeeds: a replay goes through.
  const flaky = { seen: new Set<string>(), handled: [] as string[] };
  bus.registerHandler('flaky', (e: BufferedEvent<{ key: string }>) => {
    if (!flaky.seen.has(e.key)) {
      flaky.seen.add(e.key);
      throw new NonRetryableError(`first run of ${e.key}`);
    }
    flaky.handled.push(e.key);
  });

  const app = Fastify();
  t.after(() => app.close());
  await app.register(fastifyNativeEvents, { bus, prefix: '/events', admin: { authorize: (request) => request.headers.authorization === 'Bearer s3cret' } });
  await app.register(fastifyNativeEvents, { bus, prefix: '/readonly' });
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });

  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
      timeout: UI_TIMEOUT,
    });
  } catch (err) {
    t.skip(`chromium at ${CHROMIUM} could not be started (${(err as Error).message.split('\n')[0]}); install it with apt-get install chromium`);
    return;
  }
  t.after(() => browser.close());

  const outside: string[] = [];
  const problems: string[] = [];
  const open = async (path: string): Promise<Page> => {
    const page = await browser.newPage();
    page.on('request', (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) outside.push(r.url());
    });
    page.on('pageerror', (e) => problems.push(`page error: ${String(e)}`));
    // CSP violations and failed scripts are reported here.
    page.on('console', (m) => {
      // The denied page's 403 is the point of it.
      if (m.type() === 'error' && !/Failed to load resource: .* 403/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    await page.goto(origin + path, { waitUntil: 'load', timeout: UI_TIMEOUT });
    return page;
  };

  let n = 0;
  const traffic = setInterval(() => {
    for (let i = 0; i < 5; i++) void bus.emitEvent('work', { n: n++ }, { priority: (['critical', 'normal', 'low'] as const)[n % 3] }).catch(() => undefined);
  }, 20);
  t.after(() => clearInterval(traffic));

  const page = await open('/events/dashboard#token=s3cret');
  await until(page, `document.querySelector('[data-metric="processed"]').dataset.value !== ''`);
  const first = Number(await metric(page, 'processed'));
  await until(page, `Number(document.querySelector('[data-metric="processed"]').dataset.value) > ${first}`);
  await until(page, `Number(document.querySelector('[data-metric="throughput"]').dataset.value) > 0`);
  await until(page, `Number(document.querySelector('[data-metric="p50"]').dataset.value) > 0`);
  assert.equal(await metric(page, 'workers'), '2');
  assert.equal(await metric(page, 'isolates'), '0');
  assert.equal(await page.evaluate(`document.querySelectorAll('#priorities tr[data-priority]').length`), 3);
  assert.equal(await page.evaluate(`document.querySelectorAll('#workers tr[data-worker]').length`), 2);
  await until(page, `document.querySelector('#health-checks tr[data-check="running"]')?.dataset.status === 'pass'`);
  assert.match(String(await page.evaluate(`document.getElementById('health-status').dataset.status`)), /^(healthy|degraded)$/);
  await until(page, `document.getElementById('dead-letters-state').dataset.state === 'allowed'`);

  // A dead letter appears in the table; Replay runs it again, and it succeeds.
  await bus.emitEvent('flaky', { key: 'order-7' });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'the dead letter', UI_TIMEOUT);
  const [letter] = bus.getDeadLetterQueue();
  await until(page, `document.querySelector('#dead-letters tr[data-id="${letter.id}"]') !== null`);
  const row = String(await page.evaluate(`document.querySelector('#dead-letters tr[data-id="${letter.id}"]').textContent`));
  assert.match(row, /flaky/);
  assert.match(row, /first run of order-7/);
  await page.click(`#dead-letters button[data-action="replay"][data-id="${letter.id}"]`);
  await waitFor(() => flaky.handled.length === 1, 'the replayed event to be handled', UI_TIMEOUT);
  assert.deepEqual(flaky.handled, ['order-7']);
  await until(page, `document.querySelectorAll('#dead-letters tr[data-id]').length === 0`);
  assert.match(String(await page.evaluate(`document.getElementById('dead-letters-message').textContent`)), new RegExp(`Replayed dead letter ${letter.id}`));
  assert.equal(bus.getDeadLetterQueue().length, 0);
  await page.close();

  // Without the token: the page says so and offers no buttons.
  await bus.emitEvent('flaky', { key: 'order-8' });
  await waitFor(() => bus.getDeadLetterQueue().length === 1, 'a second dead letter', UI_TIMEOUT);
  const denied = await open('/events/dashboard');
  await until(denied, `document.getElementById('dead-letters-state').dataset.state === 'denied'`);
  assert.equal(await denied.evaluate(`document.querySelectorAll('button[data-action]').length`), 0);
  assert.equal(await denied.evaluate(`document.getElementById('replay-all').hidden`), true);
  await denied.close();

  // Mounted without admin, under another prefix: figures, no dead-letter routes.
  const readonly = await open('/readonly/dashboard');
  await until(readonly, `document.getElementById('dead-letters-state').dataset.state === 'disabled'`);
  await until(readonly, `Number(document.querySelector('[data-metric="dead-letters"]').dataset.value) === 1`);
  assert.equal(await readonly.evaluate(`document.querySelectorAll('button[data-action]').length`), 0);
  await readonly.close();

  clearInterval(traffic);
  assert.deepEqual(outside, [], 'the page made no request outside the server');
  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});

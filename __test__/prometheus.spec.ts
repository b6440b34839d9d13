import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startedBus, waitFor } from './helpers';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small reader of the Prometheus text format that rejects what a scraper would. */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.ok(!types.has(type[1]), `${type[1]} declared twice`);
      types.set(type[1], type[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const [k, v] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 2, -1)];
      assert.match(k, name);
      labels[k] = v;
    }
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]) || types.get(family) === 'histogram', `${m[1]} has no # TYPE`);
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  for (const [family, kind] of types) {
    if (kind !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${family}_bucket`);
    assert.ok(buckets.length > 1, `${family} has buckets`);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, `${family} buckets are cumulative`);
    assert.equal(buckets.at(-1)?.labels.le, '+Inf');
    const count = samples.find((s) => s.name === `${family}_count`);
    assert.equal(buckets.at(-1)?.value, count?.value, `${family} +Inf bucket equals _count`);
  }
  return { types, samples };
}

test('metricsText() is valid Prometheus text with type and priority labels', async (t) => {
  const bus = await startedBus(t, { retryAttempts: 0 });
  bus.registerHandler('user.registered', () => {});
  bus.registerHandler('order "quoted"', () => {
    throw new Error('no');
  });
  for (let i = 0; i < 10; i++) await bus.emitEvent('user.registered', { i }, { priority: i % 2 ? 'critical' : 'low' });
  await bus.emitEvent('order "quoted"', {});
  await assert.rejects(bus.emitEvent('', {}));
  await waitFor(() => bus.getMetrics().queueMetrics.totalProcessed === 11, 'every event');
  const { types, samples } = parse(bus.metricsText());
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  assert.equal(types.get('bootify_events_processing_seconds'), 'histogram');
  assert.equal(value('bootify_events_processing_seconds_count'), 11);
  assert.equal(value('bootify_events_dispatched_total', { priority: 'critical' }), 5);
  assert.equal(value('bootify_events_type_dispatched_total', { type: 'user.registered' }), 10);
  assert.equal(value('bootify_events_type_failed_total', { type: 'order \\"quoted\\"' }), 1);
  assert.equal(value('bootify_events_rejected_total', { code: 'INVALID_EVENT_TYPE' }), 1);
  assert.equal(value('bootify_events_dead_letters'), 1);
  assert.equal(value('bootify_events_enqueued_total'), 11);
});

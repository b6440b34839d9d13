// The Redis backend's configuration and its start-up failure: no server
// needed (the tests against a real one are in __test__/redis/).
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { BufferedEventBusService, BusError } from '..';
import { rejectsWithCode } from './helpers';

function configError(config: unknown): BusError {
  try {
    new BufferedEventBusService(config as never);
  } catch (err) {
    assert.ok(err instanceof BusError);
    return err;
  }
  assert.fail('the configuration was accepted');
}

test('the backend is validated like every other field, each problem named', () => {
  const noUrl = configError({ backend: { type: 'redis' } });
  assert.equal(noUrl.code, 'INVALID_CONFIG');
  assert.match(noUrl.message, /backend\.url must be a redis:\/\/ or rediss:\/\/ URL/);
  assert.match(configError({ backend: { type: 'redis', url: 'redis://h', name: 'a}b' } }).message, /backend\.name must be/);
  assert.match(configError({ backend: { type: 'kafka' } }).message, /backend\.type/);
  assert.match(configError({ backend: { type: 'redis', url: 'redis://h', claimIdleMs: 5 } }).message, /backend\.claimIdleMs/);
  assert.match(
    configError({ backend: { type: 'redis', url: 'redis://h' }, durability: 'process', journal: { dir: '/tmp/x' } }).message,
    /durability must be 'memory' with backend.type 'redis'/,
  );
});

test('a configuration spread from the defaults switches to Redis with one field', () => {
  const defaults = new BufferedEventBusService().getConfig();
  assert.deepEqual(defaults.backend, { type: 'memory', url: '', name: 'events', consumer: '', claimIdleMs: 30000 });
  const bus = new BufferedEventBusService({ ...defaults, backend: { ...defaults.backend, type: 'redis', url: 'redis://127.0.0.1:1' } });
  assert.equal(bus.getConfig().backend.type, 'redis');
});

test('Redis unreachable at initialize() is BACKEND_UNAVAILABLE, and so are the emissions waiting for it', async () => {
  // A port nothing listens on.
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const bus = new BufferedEventBusService({ backend: { type: 'redis', url: `redis://127.0.0.1:${port}` } });
  const early = bus.emitEvent('job', { n: 1 });
  // bootstrapEventSystem and the application may both call it: one start.
  const [a, b] = [bus.initialize(), bus.initialize()];
  assert.equal(a, b);
  await rejectsWithCode(() => a, 'BACKEND_UNAVAILABLE', `127.0.0.1:${port}`);
  await rejectsWithCode(() => early, 'BACKEND_UNAVAILABLE');
  await rejectsWithCode(() => bus.initialize(), 'BACKEND_UNAVAILABLE', 'create a new bus');
  await bus.shutdown();
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Autowired, Container, Service } from '..';

@Service()
class Clock {
  now(): number {
    return 42;
  }
}

@Service()
class Greeter {
  @Autowired('greeting')
  greeting!: string;

  constructor(readonly clock: Clock) {}

  greet(name: string): string {
    return `${this.greeting}, ${name} (${this.clock.now()})`;
  }
}

test('singletons, constructor and property injection, string tokens', () => {
  const c = new Container().register('greeting', { useValue: 'Hello' });
  const greeter = c.resolve(Greeter);
  assert.equal(greeter.greet('Ada'), 'Hello, Ada (42)');
  assert.equal(c.resolve(Greeter), greeter, 'singleton');
  assert.equal(greeter.clock, c.resolve(Clock), 'dependencies are singletons too');
  assert.ok(c.has(Greeter) && c.has('greeting') && !c.has('missing'));
});

test('transient scope, factories and overrides', () => {
  let made = 0;
  const c = new Container().register(Clock, { useFactory: () => ({ now: () => ++made }) as Clock, scope: 'transient' });
  assert.notEqual(c.resolve(Clock), c.resolve(Clock));
  assert.equal(made, 0, 'factories run lazily, on resolve');
  c.register(Clock, { useClass: Clock });
  assert.equal(c.resolve(Clock).now(), 42);
});

test('unknown tokens, cycles and untyped parameters are clear errors', () => {
  const c = new Container();
  assert.throws(() => c.resolve('nothing'), /nothing is registered for nothing/);
  c.register('a', { useFactory: () => c.resolve('b') });
  c.register('b', { useFactory: () => c.resolve('a') });
  assert.throws(() => c.resolve('a'), /circular dependency while resolving a/);
  class NeedsString {
    constructor(readonly value: string) {}
  }
  // A class with a primitive parameter and design metadata, as tsc emits it.
  Reflect.defineMetadata('design:paramtypes', [String], NeedsString);
  assert.throws(() => c.resolve(NeedsString), /cannot inject parameter 0 of NeedsString/);
});

// A small DI container for projects without BootifyJS's: singletons,
// constructor injection through `design:paramtypes`, `@Autowired()`
// properties and parameters. BootifyJS's own container can be passed to
// bootstrapEventSystem instead: anything with resolve() and register().
import 'reflect-metadata';
import type { ContainerLike, Provider, Token } from '../../index';

type Constructor<T = unknown> = abstract new (...args: any[]) => T;
type Concrete<T = unknown> = new (...args: any[]) => T;

const AUTOWIRED_PROPS = 'bootify:autowired-properties';
const AUTOWIRED_PARAMS = 'bootify:autowired-parameters';

/** Types `design:paramtypes` reports for primitives and untyped values: never injectable by type. */
const NOT_INJECTABLE = new Set<unknown>([Object, String, Number, Boolean, Symbol, BigInt, Array, Function, Promise]);

interface AutowiredProperty {
  property: string | symbol;
  token: Token | undefined;
}

/** Classes decorated with a component decorator, in declaration order. */
const components: Constructor[] = [];

export function registerComponent(target: Constructor): void {
  if (!components.includes(target)) components.push(target);
}

/** Every class decorated `@Service()`, `@Component()` or `@EventListener()` so far. */
export function getAllComponents(): Constructor[] {
  return [...components];
}

/** Registers the class as a singleton component. */
export function Component(): ClassDecorator {
  return (target) => registerComponent(target as unknown as Constructor);
}

/** Same as `@Component()`, for services. */
export const Service = Component;

/**
 * Injects a dependency: on a property (resolved when the instance is
 * created) or on a constructor parameter. The token defaults to the
 * declared type (`emitDecoratorMetadata`).
 */
export function Autowired(token?: Token): PropertyDecorator & ParameterDecorator {
  return (target: object, property: string | symbol | undefined, index?: number) => {
    if (typeof index === 'number') {
      const ctor = target as Constructor;
      const params: (Token | undefined)[] = Reflect.getOwnMetadata(AUTOWIRED_PARAMS, ctor) ?? [];
      params[index] = token;
      Reflect.defineMetadata(AUTOWIRED_PARAMS, params, ctor);
      return;
    }
    if (property === undefined) return;
    const ctor = target.constructor;
    const props: AutowiredProperty[] = Reflect.getMetadata(AUTOWIRED_PROPS, ctor) ?? [];
    Reflect.defineMetadata(AUTOWIRED_PROPS, [...props, { property, token }], ctor);
  };
}

export class Container implements ContainerLike {
  readonly #providers = new Map<Token, Provider>();
  readonly #singletons = new Map<Token, unknown>();
  readonly #resolving = new Set<Token>();

  register<T>(token: Token<T>, provider: Provider<T>): this {
    this.#providers.set(token, provider as Provider);
    this.#singletons.delete(token);
    return this;
  }

  /** Whether the token was registered or is a decorated component. */
  has(token: Token): boolean {
    return this.#providers.has(token) || components.includes(token as Constructor);
  }

  resolve<T>(token: Token<T>): T {
    if (this.#singletons.has(token)) return this.#singletons.get(token) as T;
    const provider = this.#providers.get(token) ?? this.#implicit(token);
    if (this.#resolving.has(token)) {
      throw new Error(`circular dependency while resolving ${describeToken(token)}`);
    }
    this.#resolving.add(token);
    try {
      const instance = this.#create(provider) as T;
      if ((provider.scope ?? 'singleton') === 'singleton') this.#singletons.set(token, instance);
      return instance;
    } finally {
      this.#resolving.delete(token);
    }
  }

  /** A class nobody registered is its own provider (a singleton), as in BootifyJS. */
  #implicit(token: Token): Provider {
    if (typeof token === 'function') return { useClass: token as Concrete };
    throw new Error(`nothing is registered for ${describeToken(token)}`);
  }

  #create(provider: Provider): unknown {
    if ('useValue' in provider) return provider.useValue;
    if (provider.useFactory) return provider.useFactory();
    const ctor = provider.useClass;
    if (!ctor) throw new Error('a provider needs useClass, useFactory or useValue');
    const types: (Token | undefined)[] = Reflect.getMetadata('design:paramtypes', ctor) ?? [];
    const explicit: (Token | undefined)[] = Reflect.getOwnMetadata(AUTOWIRED_PARAMS, ctor) ?? [];
    const args = types.map((type, i) => {
      const token = explicit[i] ?? type;
      if (token === undefined || (NOT_INJECTABLE.has(token) && !this.#providers.has(token))) {
        throw new Error(`cannot inject parameter ${i} of ${ctor.name}: its type is not a class; use @Autowired(token)`);
      }
      return this.resolve(token);
    });
    const instance = new ctor(...args) as Record<string | symbol, unknown>;
    const props: AutowiredProperty[] = Reflect.getMetadata(AUTOWIRED_PROPS, ctor) ?? [];
    for (const { property, token } of props) {
      const type = token ?? (Reflect.getMetadata('design:type', ctor.prototype, property) as Token | undefined);
      if (type === undefined || (NOT_INJECTABLE.has(type) && !this.#providers.has(type))) {
        throw new Error(`cannot inject ${ctor.name}.${String(property)}: its type is not a class; use @Autowired(token)`);
      }
      instance[property] = this.resolve(type);
    }
    return instance;
  }
}

function describeToken(token: Token): string {
  return typeof token === 'function' ? token.name || 'an anonymous class' : String(token);
}

/** The container this package uses when none is passed in. */
export const container = new Container();

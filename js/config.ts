import type { BufferedEventBusOptions, BufferedEventConfig, BufferedEventConfigInput } from '../index';
import { BusError, callNative, errorText } from './errors';
import { describe } from './handlers';
import { native } from './native';

const ENV_PREFIX = 'BUFFERED_EVENTS_';

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Merges `input` with the defaults key by key, applies `BUFFERED_EVENTS_*`
 * overrides from `env`, and validates the result (in the native core, so
 * there is one set of rules). Throws `INVALID_CONFIG` naming every problem.
 */
export function resolveConfig(
  input: BufferedEventConfigInput | BufferedEventBusOptions | undefined | null,
  env: NodeJS.ProcessEnv = process.env,
): BufferedEventConfig {
  const { tree, problems } = readConfigInput(input);
  const vars: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(ENV_PREFIX) && value !== undefined) vars[key] = value;
  }
  return callNative(() => native.resolveConfig(tree, vars, problems)) as BufferedEventConfig;
}

/** Nesting deeper than any configuration group: a cycle, or not a config. */
const MAX_DEPTH = 8;

/**
 * Copies a caller's configuration into plain JSON for the native resolver.
 * Reading it is hostile ground (getters and proxies can throw), and JSON
 * has no NaN, Infinity, BigInt or functions: each becomes a problem naming
 * its path instead of a raw conversion error. `undefined` means "not given",
 * as a spread with an optional override writes it.
 */
export function readConfigInput(input: unknown): { tree: unknown; problems: string[] } {
  const problems: string[] = [];
  if (input === undefined || input === null) return { tree: null, problems };
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new BusError('INVALID_CONFIG', `invalid configuration: config must be an object, got ${describe(input)}`, {
      field: 'config',
    });
  }
  const copy = (value: unknown, path: string, depth: number): unknown => {
    switch (typeof value) {
      case 'number':
        if (Number.isFinite(value)) return value;
        problems.push(`${path} must be a finite number, got ${value}`);
        return undefined;
      case 'bigint':
        problems.push(`${path} must be a number, got a BigInt (${value}n)`);
        return undefined;
      case 'function':
      case 'symbol':
        problems.push(`${path} must be a plain value, got a ${typeof value}`);
        return undefined;
      case 'object':
        break;
      default:
        return value;
    }
    if (value === null) return null;
    if (depth >= MAX_DEPTH) {
      problems.push(`${path} is nested too deeply (a cycle?)`);
      return undefined;
    }
    const read = (key: string | number, at: string): unknown => {
      try {
        return (value as Record<string | number, unknown>)[key];
      } catch (err) {
        problems.push(`reading ${at} threw: ${errorText(err)}`);
        return undefined;
      }
    };
    let keys: string[];
    try {
      keys = Array.isArray(value) ? [] : Object.keys(value);
      if (Array.isArray(value)) return Array.from({ length: value.length }, (_, i) => copy(read(i, `${path}[${i}]`), `${path}[${i}]`, depth + 1));
    } catch (err) {
      problems.push(`reading ${path || 'config'} threw: ${errorText(err)}`);
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      // Not configuration JSON: the bus takes it aside (js/logs.ts).
      if (key === 'logger' && (path === '' || path === 'config')) continue;
      const at = path ? `${path}.${key}` : key;
      const child = copy(read(key, at), at, depth + 1);
      if (child !== undefined) out[key] = child;
    }
    return out;
  };
  return { tree: copy(input, '', 0) ?? null, problems };
}

/** BootifyJS's defaults, before environment overrides. */
export const defaultBufferedEventConfig: Readonly<BufferedEventConfig> = deepFreeze(
  native.resolveConfig(null, {}, []) as BufferedEventConfig,
);

import type { BufferedEventConfig, BufferedEventConfigInput } from '../index';
import { BusError, callNative } from './errors';
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
  input: BufferedEventConfigInput | undefined | null,
  env: NodeJS.ProcessEnv = process.env,
): BufferedEventConfig {
  if (input !== undefined && input !== null && (typeof input !== 'object' || Array.isArray(input))) {
    throw new BusError('INVALID_CONFIG', `invalid configuration: config must be an object, got ${typeof input}`);
  }
  const vars: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(ENV_PREFIX) && value !== undefined) vars[key] = value;
  }
  return callNative(() => native.resolveConfig(input ?? null, vars)) as BufferedEventConfig;
}

/** BootifyJS's defaults, before environment overrides. */
export const defaultBufferedEventConfig: Readonly<BufferedEventConfig> = deepFreeze(
  native.resolveConfig(null, {}) as BufferedEventConfig,
);

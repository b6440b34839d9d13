// @bootifyjs/native-events/fastify: metrics, health, a live dashboard and
// the dead-letter admin routes of one bus, as a Fastify plugin. The main
// entry never loads this file, so fastify and fastify-plugin stay optional.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { NativeEventsAdminOptions, NativeEventsPluginOptions, NativeEventsStats } from '../fastify';
import type { BufferedEventBusService, HealthCheckResult } from '../index';
import { BusError, errorText } from './errors';
import { registerDeadLetterRoutes, validationMessage } from './fastify-dead-letters';
import { errorResponses, healthBody, problem, statsBody } from './fastify-schemas';
import { healthView, statsHealth, statsView } from './fastify-views';
import { summarizeThrown } from './hostile';

type FastifyPluginModule = typeof import('fastify-plugin');

/** fastify-plugin, with a message saying what to install when it is missing. */
function loadFastifyPlugin(): FastifyPluginModule {
  try {
    return require('fastify-plugin') as FastifyPluginModule;
  } catch (err) {
    if ((err as { code?: unknown })?.code !== 'MODULE_NOT_FOUND') throw err;
    throw new BusError('INVALID_STATE', '@bootifyjs/native-events/fastify needs fastify 5 and fastify-plugin 5: npm install fastify fastify-plugin', {
      field: 'fastify-plugin',
    });
  }
}

const fastifyPlugin = loadFastifyPlugin();

/** Next to dist/ in the package, and read at registration. */
const DASHBOARD_FILE = path.join(__dirname, '..', 'js', 'dashboard.html');

/** The methods the routes call: a bus from another copy of this package passes too. */
const BUS_METHODS = ['getMetrics', 'metricsText', 'getHealthStatus', 'getWorkerStatistics', 'isReady', 'getDeadLetterQueue', 'replayDeadLetter', 'removeDeadLetter', 'clearDeadLetterQueue'] as const;

/** How old (ms) a health evaluation `/stats` reuses may be. */
const STATS_HEALTH_MAX_AGE = 2000;

interface Settings {
  bus: BufferedEventBusService;
  dashboard: boolean;
  admin?: NativeEventsAdminOptions;
}

function what(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
}

function invalid(field: string, message: string): BusError {
  return new BusError('INVALID_CONFIG', message, { field });
}

/** `obj[key]`, or an INVALID_CONFIG naming `field` when reading it throws. */
function option(obj: object, key: string, field: string): unknown {
  try {
    return (obj as Record<string, unknown>)[key];
  } catch (err) {
    throw invalid(field, `reading the plugin option ${field} threw: ${errorText(err)}`);
  }
}

/** The plugin's options, checked; each error names the field. Read once each: getters may throw or change. */
function readSettings(options: NativeEventsPluginOptions | undefined): Settings {
  const given: object = options !== null && typeof options === 'object' ? options : {};
  const bus = option(given, 'bus', 'bus') as BufferedEventBusService;
  const dashboard = option(given, 'dashboard', 'dashboard') ?? true;
  const admin = option(given, 'admin', 'admin') as NativeEventsAdminOptions | null | undefined;
  const missing = bus !== null && typeof bus === 'object' ? BUS_METHODS.find((m) => typeof option(bus, m, 'bus') !== 'function') : 'getMetrics';
  if (missing !== undefined) {
    throw invalid('bus', `bus must be a BufferedEventBusService (one with ${missing}()), got ${what(bus)}`);
  }
  if (typeof dashboard !== 'boolean') throw invalid('dashboard', `dashboard must be a boolean, got ${what(dashboard)}`);
  if (admin === undefined) return { bus, dashboard };
  const authorize = admin !== null && typeof admin === 'object' ? option(admin, 'authorize', 'admin.authorize') : undefined;
  if (typeof authorize !== 'function') {
    const got = admin !== null && typeof admin === 'object' ? what(authorize) : `admin: ${what(admin)}`;
    throw invalid(
      'admin.authorize',
      `admin.authorize must be a function (request) => boolean | Promise<boolean> deciding who may use the dead-letter routes, got ${got}; leave admin out to have no such routes`,
    );
  }
  // Bound to its object, read once: what was checked is what runs.
  return { bus, dashboard, admin: { authorize: (request) => (authorize as NativeEventsAdminOptions['authorize']).call(admin, request) } };
}

/** The page, and a Content-Security-Policy allowing exactly its inline script and style. */
function loadDashboard(): { html: string; csp: string } {
  let html: string;
  try {
    html = readFileSync(DASHBOARD_FILE, 'utf8');
  } catch (err) {
    throw new BusError('INVALID_STATE', `the dashboard page ${DASHBOARD_FILE} cannot be read (${errorText(err)}); reinstall the package or register with dashboard: false`, {
      field: 'dashboard',
    });
  }
  const hashes = (tag: string): string =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      .map((m) => `'sha256-${createHash('sha256').update(m[1], 'utf8').digest('base64')}'`)
      .join(' ');
  const csp = [
    "default-src 'none'",
    `script-src ${hashes('script')}`,
    `style-src ${hashes('style')}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

/**
 * getHealthStatus() consumes what it reports (the maxima and panics since
 * the previous call), so open dashboards share one evaluation every
 * STATS_HEALTH_MAX_AGE ms instead of each taking their own.
 */
class HealthSampler {
  readonly #bus: BufferedEventBusService;
  #last: { at: number; result: Promise<HealthCheckResult> } | undefined;

  constructor(bus: BufferedEventBusService) {
    this.#bus = bus;
  }

  /** A new evaluation, which `recent()` then shares. */
  fresh(): Promise<HealthCheckResult> {
    const result = Promise.resolve().then(() => this.#bus.getHealthStatus());
    this.#last = { at: Date.now(), result };
    return result;
  }

  /** The last evaluation when at most `maxAge` ms old, else a new one. */
  async recent(maxAge: number): Promise<NativeEventsStats['health']> {
    const last = this.#last !== undefined && Date.now() - this.#last.at <= maxAge ? this.#last : undefined;
    const at = last?.at ?? Date.now();
    try {
      return statsHealth(await (last?.result ?? this.fresh()), at);
    } catch {
      return null;
    }
  }
}

const statusText = (status: number): string => STATUS_CODES[status] ?? 'Error';

/** Errors of the plugin's routes as `{ error, message }`; bus errors keep their code. */
function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error.validation) return reply.code(400).send(problem('Bad Request', validationMessage(error, request)));
  if (error instanceof BusError) {
    const status = error.code === 'INVALID_ARGUMENT' ? 400 : error.code === 'SHUTTING_DOWN' || error.code === 'INVALID_STATE' ? 503 : 500;
    if (status === 500) request.log.error({ error: summarizeThrown(error) }, '@bootifyjs/native-events: a bus call failed');
    return reply.code(status).send(problem(statusText(status), error.message, error.code));
  }
  // Fastify's own client errors (a body on a route that takes none, ...).
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
  if (status < 500) return reply.code(status).send(problem(statusText(status), errorText(error)));
  request.log.error({ error: summarizeThrown(error) }, '@bootifyjs/native-events: a route failed');
  return reply.code(500).send(problem('Internal Server Error', 'the route failed; see the server log'));
}

async function nativeEventsPlugin(scope: FastifyInstance, options: NativeEventsPluginOptions): Promise<void> {
  const { bus, dashboard, admin } = readSettings(options);
  const health = new HealthSampler(bus);
  scope.setErrorHandler(handleError);

  scope.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').header('cache-control', 'no-store').send(bus.metricsText()),
  );

  scope.get('/health', { schema: { response: { ...errorResponses, 200: healthBody, 503: healthBody } } }, async (request, reply) => {
    let result: HealthCheckResult;
    try {
      result = await health.fresh();
    } catch (err) {
      // Not through handleError: a 503 here carries a health body.
      request.log.error({ error: summarizeThrown(err) }, '@bootifyjs/native-events: getHealthStatus failed');
      return reply.code(500).send(problem('Internal Server Error', `getHealthStatus failed: ${errorText(err)}`));
    }
    const view = healthView(result);
    return reply.code(view.status === 'unhealthy' ? 503 : 200).header('cache-control', 'no-store').send(view);
  });

  if (dashboard) {
    const page = loadDashboard();
    scope.get('/dashboard', async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .headers({
          'content-security-policy': page.csp,
          'x-content-type-options': 'nosniff',
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
        })
        .send(page.html),
    );
    scope.get('/stats', { schema: { response: { 200: statsBody, ...errorResponses } } }, async (_request, reply) => {
      const stats = statsView(bus, admin !== undefined, await health.recent(STATS_HEALTH_MAX_AGE));
      return reply.header('cache-control', 'no-store').send(stats);
    });
  }

  if (admin) registerDeadLetterRoutes(scope, bus, admin);
}

/** The plugin; see fastify.d.ts. Encapsulated, so Fastify's `prefix` applies and the error handler stays inside. */
export const fastifyNativeEvents: FastifyPluginAsync<NativeEventsPluginOptions> = fastifyPlugin(nativeEventsPlugin, { name: '@bootifyjs/native-events', fastify: '5.x', encapsulate: true });
export default fastifyNativeEvents;

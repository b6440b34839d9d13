// The dead-letter admin routes. They exist only when the application gives
// `admin.authorize`, and every request passes through it before anything
// else: no caller gets them by default. Everything in a request is
// hostile: ids and paging arrive as strings, are checked by schema and
// parsed again here.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { DeadLetterListResponse, NativeEventsAdminOptions } from '../fastify';
import type { BufferedEventBusService } from '../index';
import { cut, deadLetterView } from './fastify-views';
import { deadLetterList, errorResponses, idParams, INPUT_RULES, type InputField, pageQuery, problem } from './fastify-schemas';
import { summarizeThrown } from './hostile';

const DEFAULT_LIMIT = 50;

/** The field's value as an integer within its rules, or undefined. */
export function readInput(field: InputField, raw: unknown): number | undefined {
  const rule = INPUT_RULES[field];
  if (typeof raw !== 'string' || !new RegExp(rule.pattern).test(raw)) return undefined;
  const value = Number(raw);
  return value >= rule.min && value <= rule.max ? value : undefined;
}

/** The message of a 400 for `field`, naming the value received. */
export function inputMessage(field: InputField, raw: unknown): string {
  const got = Array.isArray(raw) ? `${raw.length} values` : typeof raw === 'string' ? JSON.stringify(cut(raw, 40)) : String(raw);
  return `${field} must be ${INPUT_RULES[field].what}, got ${got}`;
}

/** The message of a schema validation error: the rule of the field when it is one of ours, else Fastify's. */
export function validationMessage(error: FastifyError, request: FastifyRequest): string {
  const first = error.validation?.[0];
  const field = first?.instancePath.replace(/^\//, '') || (first?.params as { missingProperty?: unknown } | undefined)?.missingProperty;
  if (typeof field === 'string' && Object.hasOwn(INPUT_RULES, field)) {
    const source = (error.validationContext === 'params' ? request.params : request.query) as Record<string, unknown> | undefined;
    return inputMessage(field as InputField, source?.[field]);
  }
  return error.message;
}

/** A request a browser marked as coming from another site (CSRF); non-browser clients send no such header. */
function crossSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

/** The onRequest hook of every admin route. */
function guard(admin: NativeEventsAdminOptions): onRequestAsyncHookHandler {
  // Read once: swapping the hook on the options object later changes nothing.
  const authorize = admin.authorize;
  return async (request, reply) => {
    if (crossSite(request)) {
      return reply.code(403).send(problem('Forbidden', 'the dead-letter routes refuse cross-site browser requests (Sec-Fetch-Site)'));
    }
    let allowed: unknown;
    try {
      allowed = await authorize.call(admin, request);
    } catch (err) {
      request.log.error({ error: summarizeThrown(err) }, '@bootifyjs/native-events: admin.authorize threw');
      return reply.code(500).send(problem('Internal Server Error', 'admin.authorize failed; see the server log'));
    }
    if (allowed !== true) {
      return reply.code(403).send(problem('Forbidden', 'admin.authorize refused this request'));
    }
  };
}

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

/** The route's id, or undefined after answering 400. */
function idOf(request: IdRequest, reply: FastifyReply): number | undefined {
  const raw = request.params.id;
  const id = readInput('id', raw);
  if (id === undefined) reply.code(400).send(problem('Bad Request', inputMessage('id', raw)));
  return id;
}

function noSuchLetter(reply: FastifyReply, id: number): FastifyReply {
  return reply.code(404).send(problem('Not Found', `there is no dead letter with id ${id}`));
}

/** Registers the admin routes on `scope` (the plugin's encapsulated context). */
export function registerDeadLetterRoutes(scope: FastifyInstance, bus: BufferedEventBusService, admin: NativeEventsAdminOptions): void {
  const onRequest = guard(admin);
  const answers = (ok: unknown) => ({ 200: ok, ...errorResponses });
  // None of them takes a body.
  const bodyLimit = 1024;

  scope.get<{ Querystring: { offset?: string; limit?: string } }>(
    '/dead-letters',
    { onRequest, schema: { querystring: pageQuery, response: answers(deadLetterList) } },
    async (request, reply) => {
      const page: { offset?: number; limit?: number } = { offset: 0, limit: DEFAULT_LIMIT };
      for (const field of ['offset', 'limit'] as const) {
        const raw = request.query[field];
        if (raw === undefined) continue;
        const value = readInput(field, raw);
        if (value === undefined) return reply.code(400).send(problem('Bad Request', inputMessage(field, raw)));
        page[field] = value;
      }
      const total = bus.getMetrics().retryStats.deadLetterQueueSize;
      const entries = bus.getDeadLetterQueue(page).map(deadLetterView);
      const body: DeadLetterListResponse = { total, offset: page.offset!, limit: page.limit!, entries };
      return body;
    },
  );

  scope.post(
    '/dead-letters/replay',
    { onRequest, bodyLimit, schema: { response: answers({ type: 'object', properties: { replayed: { type: 'number' } } }) } },
    async () => ({ replayed: bus.replayDeadLetter() }),
  );

  scope.post<{ Params: { id: string } }>(
    '/dead-letters/:id/replay',
    { onRequest, bodyLimit, schema: { params: idParams, response: answers({ type: 'object', properties: { replayed: { type: 'number' } } }) } },
    async (request, reply) => {
      const id = idOf(request, reply);
      if (id === undefined) return reply;
      const replayed = bus.replayDeadLetter(id);
      return replayed === 0 ? noSuchLetter(reply, id) : { replayed };
    },
  );

  scope.delete(
    '/dead-letters',
    { onRequest, bodyLimit, schema: { response: answers({ type: 'object', properties: { removed: { type: 'number' } } }) } },
    async () => ({ removed: bus.clearDeadLetterQueue() }),
  );

  scope.delete<{ Params: { id: string } }>(
    '/dead-letters/:id',
    { onRequest, bodyLimit, schema: { params: idParams, response: answers({ type: 'object', properties: { removed: { type: 'number' } } }) } },
    async (request, reply) => {
      const id = idOf(request, reply);
      if (id === undefined) return reply;
      return bus.removeDeadLetter(id) ? { removed: 1 } : noSuchLetter(reply, id);
    },
  );
}

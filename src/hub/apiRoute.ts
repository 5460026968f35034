/**
 * One declaration per admin API route, whose zod schemas do two jobs: they validate what comes in (a
 * bad path segment, query parameter or body field is a 400 `WARREN_E_BAD_REQUEST` naming the field)
 * and they are the OpenAPI 3.1 document served at /api/v1/openapi.json (`z.toJSONSchema`), so the
 * document cannot drift from what the code checks. openapi.test.ts calls every route and validates the
 * real answers against the document.
 *
 * @module
 * @example
 *   route({
 *     method: 'GET', path: '/api/v1/agents/:name', auth: 'admin', summary: 'One agent with live tunnel state.',
 *     params: z.object({ name: z.string() }), response: Agent,
 *     handle: async ({ params }) => view(params.name),
 *   })
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Principal } from '../doors/door.js';
import { parseInput, readJson } from './httpJson.js';
import { SESSION_COOKIE } from './ui/sessions.js';

/** Who may call a route: anyone, any authenticated user, admins (group warren:admins), or an agent (mTLS). */
export type Access = 'none' | 'user' | 'admin' | 'agent';

export type Method = 'GET' | 'POST' | 'DELETE';

/** What the API hands a route once the caller is authenticated. */
export interface RawCtx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  readonly principal: Principal;
  /** For agent routes: the agent certificate's name and serial. */
  readonly agent: { name: string; serial: string } | undefined;
}

export interface RouteCtx<P, Q, B> extends Omit<RawCtx, 'params' | 'query'> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
}

type Obj = z.ZodObject;

export interface RouteSpec<P extends Obj, Q extends Obj, B extends z.ZodType, R extends z.ZodType> {
  readonly method: Method;
  /** `/api/v1/agents/:name`; each `:name` needs a field in `params` (strings by default). */
  readonly path: string;
  readonly auth: Access;
  readonly summary: string;
  /** The success status (200 unless given). */
  readonly status?: number;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** The success answer's schema: the document's response schema. */
  readonly response: R;
  /** The answer's media type when it is not JSON (the handler then writes it itself and returns undefined). */
  readonly produces?: string;
  /** With `?follow=true` the answer is NDJSON, one line of this schema per row, as rows are written. */
  readonly follow?: z.ZodType;
  /** Returns the JSON answer, or undefined when it wrote the response itself (PEM, NDJSON). */
  handle(ctx: RouteCtx<z.output<P>, z.output<Q>, z.output<B>>): Promise<z.input<R> | undefined>;
}

/** A route with its types erased, as the API's table holds it. */
export interface ApiRoute {
  readonly method: Method;
  readonly path: string;
  readonly auth: Access;
  readonly summary: string;
  readonly status: number;
  readonly schemas: { readonly params?: Obj; readonly query?: Obj; readonly body?: z.ZodType; readonly response: z.ZodType; readonly follow?: z.ZodType };
  readonly produces: string;
  run(ctx: RawCtx): Promise<unknown>;
}

export function route<P extends Obj = Obj, Q extends Obj = Obj, B extends z.ZodType = z.ZodUndefined, R extends z.ZodType = z.ZodType>(
  spec: RouteSpec<P, Q, B, R>,
): ApiRoute {
  const { params, query, body, response, follow } = spec;
  return {
    method: spec.method,
    path: spec.path,
    auth: spec.auth,
    summary: spec.summary,
    status: spec.status ?? 200,
    schemas: { ...(params ? { params } : {}), ...(query ? { query } : {}), ...(body ? { body } : {}), response, ...(follow ? { follow } : {}) },
    produces: spec.produces ?? 'application/json',
    run: async (ctx) =>
      spec.handle({
        ...ctx,
        params: (params ? parseInput(params, ctx.params, 'path') : ctx.params) as z.output<P>,
        query: (query ? parseInput(query, Object.fromEntries(ctx.query), 'query') : {}) as z.output<Q>,
        body: (body ? await readJson(ctx.req, body) : undefined) as z.output<B>,
      }),
  };
}

type Json = Record<string, unknown>;

/**
 * A schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect); schemas with a `.meta({ id })` go to the
 * document's components and are referenced from there.
 */
function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Json): Json {
  const { $defs, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  delete rest.$schema;
  const relink = (v: unknown): Json => JSON.parse(JSON.stringify(v).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json;
  for (const [id, s] of Object.entries(($defs ?? {}) as Json)) components[id] = relink(s);
  return relink(rest);
}

function parameters(schema: Obj | undefined, where: 'path' | 'query', components: Json): Json[] {
  if (!schema) return [];
  const s = toSchema(schema, 'input', components) as { properties?: Json; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, p]) => ({
    name, in: where, required: where === 'path' || (s.required ?? []).includes(name), schema: p,
    ...(typeof (p as Json).description === 'string' ? { description: (p as Json).description } : {}),
  }));
}

/** The OpenAPI 3.1 document of `routes`; `errorSchema` is every error answer's body. */
export interface OpenApi {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string };
  readonly paths: Record<string, Json>;
  readonly components: Json;
}

export function openapiDocument(routes: readonly ApiRoute[], info: { title: string; version: string }, errorSchema: z.ZodType): OpenApi {
  const components: Json = {};
  const paths: Record<string, Json> = {};
  const error = { description: 'Error: the code says which (docs/errors.md)', content: { 'application/json': { schema: toSchema(errorSchema, 'output', components) } } };
  for (const r of routes) {
    const content: Json = { [r.produces]: { schema: toSchema(r.schemas.response, 'output', components) } };
    if (r.schemas.follow) content['application/x-ndjson'] = { schema: toSchema(r.schemas.follow, 'output', components), 'x-warren-each-line': true };
    const pathParams = r.schemas.params ?? z.object(Object.fromEntries([...r.path.matchAll(/:(\w+)/g)].map((m) => [m[1]!, z.string()])));
    (paths[r.path.replace(/:(\w+)/g, '{$1}')] ??= {})[r.method.toLowerCase()] = {
      operationId: `${r.method.toLowerCase()}${r.path.replace(/^\/api\/v1/, '').replace(/[/:-](\w)/g, (_, c: string) => c.toUpperCase())}`,
      summary: r.summary,
      security: r.auth === 'none' ? [] : r.auth === 'agent' ? [{ agentCertificate: [] }] : [{ bearer: [] }, { userCertificate: [] }, { session: [] }],
      'x-warren-access': r.auth,
      parameters: [...parameters(pathParams, 'path', components), ...parameters(r.schemas.query, 'query', components)],
      ...(r.schemas.body ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(r.schemas.body, 'input', components) } } } } : {}),
      responses: { [String(r.status)]: { description: 'Success', content }, default: error },
    };
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A hub access token (`warren token create`), or a trusted external JWT where the hub accepts it.' },
        userCertificate: { type: 'mutualTLS', description: 'A user client certificate signed by the hub CA (`warren user-cert create`).' },
        agentCertificate: { type: 'mutualTLS', description: "The calling agent's client certificate." },
        session: {
          type: 'apiKey', in: 'cookie', name: SESSION_COOKIE,
          description: 'The web UI session (POST /ui/session); a POST or DELETE with it also needs the x-csrf-token header, else 403 WARREN_E_CSRF.',
        },
      },
      schemas: components,
    },
  };
}

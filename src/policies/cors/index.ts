/**
 * `cors`: Cross-Origin Resource Sharing answered by the gateway.
 *
 * - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
 *   here, never forwarded: 204 with the CORS headers when the origin, method and headers
 *   are allowed, otherwise a 403 problem without any CORS header (the browser then
 *   refuses the real request).
 * - Any other request with an allowed `Origin` goes upstream; its response gets
 *   `Access-Control-Allow-Origin` (and credentials / exposed headers as configured).
 *   A request from an origin that is not allowed is forwarded too, but its response
 *   carries no CORS header, and CORS headers the upstream set are removed, so the browser
 *   does not hand the response to the page.
 * - Every response says `Vary: Origin` (the answer depends on it); a preflight answer
 *   also varies on the request method and headers.
 *
 *     - type: cors
 *       config:
 *         origins: [https://app.example.com, "https://*.example.com"]
 *         methods: [GET, POST]
 *         headers: [content-type, authorization]
 *         expose_headers: [x-request-id]
 *         credentials: true
 *         max_age: 10m
 */
import type { Exchange } from "../../core/exchange.ts";
import { recordDecision } from "../../core/pipeline.ts";
import type { PolicyFactory } from "../../core/policy.ts";
import { problem } from "../../core/problem.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";
import { checkOrigin, compileOrigins } from "./origins.ts";

/** The `config` of a `cors` policy. */
export interface CorsConfig {
  origins: string[];
  methods?: string[];
  headers?: string[];
  expose_headers?: string[];
  credentials?: boolean;
  max_age?: number | string;
}

const DEFAULT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/** Key of the allowed origin in `exchange.state` for the response hook. */
const STATE_KEY = "cors";

export const corsPolicy: PolicyFactory<CorsConfig> = {
  type: "cors",
  description: "Cross-origin resource sharing: preflight answers and CORS response headers.",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["origins"],
    properties: {
      origins: {
        type: "array",
        minItems: 1,
        items: { type: "string", minLength: 1 },
        description: 'Allowed origins: exact (https://app.example.com), patterns (https://*.example.com), ~regex, or "*".',
      },
      methods: { type: "array", minItems: 1, items: { type: "string", pattern: "^[A-Za-z]+$" }, description: "Allowed methods; default GET, HEAD, POST, PUT, PATCH, DELETE." },
      headers: { type: "array", items: { type: "string", pattern: TOKEN }, description: "Allowed request headers; default: whatever the preflight asks for." },
      expose_headers: { type: "array", items: { type: "string", pattern: TOKEN }, description: "Response headers the page may read." },
      credentials: { type: "boolean", description: "Allow cookies and HTTP authentication (Access-Control-Allow-Credentials)." },
      max_age: { ...durationSchema, description: "How long browsers may cache a preflight answer." },
    },
  },
  validate(config) {
    const problems: { path: (string | number)[]; message: string }[] = [];
    config.origins.forEach((origin, i) => {
      const message = checkOrigin(origin);
      if (message) problems.push({ path: ["origins", i], message });
    });
    if (config.credentials && config.origins.includes("*")) {
      problems.push({ path: ["credentials"], message: 'browsers refuse credentials with origin "*": list the allowed origins instead' });
    }
    return problems;
  },
  create(config) {
    const origins = compileOrigins(config.origins);
    const methodList = (config.methods ?? DEFAULT_METHODS).map((m) => m.toUpperCase());
    const methods = new Set(methodList);
    const allowMethods = methodList.join(", ");
    const allowedHeaders = config.headers ? new Set(config.headers.map((h) => h.toLowerCase())) : null;
    const allowHeaders = config.headers?.join(", ") ?? null;
    const exposeHeaders = config.expose_headers && config.expose_headers.length > 0 ? config.expose_headers.join(", ") : null;
    const credentials = config.credentials === true;
    const maxAge = config.max_age !== undefined ? String(Math.floor(parseDuration(config.max_age) / 1000)) : null;
    // With "*" and no credentials, every origin gets "*" and the answer is the same for all.
    const wildcard = origins.any && !credentials;

    const refuse = (exchange: Exchange, kind: string, detail: string) => {
      recordDecision(exchange, "cors", "preflight-refused");
      return problem({ status: 403, kind, detail, requestId: exchange.requestId, headers: { vary: "Origin" } });
    };

    return {
      type: "cors",
      onRequest(exchange) {
        const headers = exchange.request.headers;
        const origin = headers.get("origin");
        if (origin === null) return undefined;
        const requestedMethod = exchange.request.method === "OPTIONS" ? headers.get("access-control-request-method") : null;
        const allowed = origins.allows(origin);
        if (requestedMethod === null) {
          exchange.state.set(STATE_KEY, allowed ? origin : null);
          if (!allowed) recordDecision(exchange, "cors", "origin-refused");
          return undefined;
        }
        if (!allowed) return refuse(exchange, "cors-origin-forbidden", `Origin ${JSON.stringify(origin.slice(0, 200))} may not call this API.`);
        if (!methods.has(requestedMethod.toUpperCase())) {
          return refuse(exchange, "cors-method-forbidden", `Method ${JSON.stringify(requestedMethod.slice(0, 40))} is not allowed; allowed: ${allowMethods}.`);
        }
        const requestedHeaders = parseHeaderList(headers.get("access-control-request-headers"));
        if (requestedHeaders === null) return refuse(exchange, "cors-header-forbidden", "Access-Control-Request-Headers is not a list of header names.");
        if (allowedHeaders) {
          const refused = requestedHeaders.filter((name) => !allowedHeaders.has(name));
          if (refused.length > 0) {
            return refuse(exchange, "cors-header-forbidden", `Header(s) ${refused.join(", ")} not allowed; allowed: ${allowHeaders || "(none)"}.`);
          }
        }
        recordDecision(exchange, "cors", "preflight");
        const answer = new Headers({
          "access-control-allow-origin": wildcard ? "*" : origin,
          "access-control-allow-methods": allowMethods,
          vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        });
        const headerAnswer = allowHeaders ?? requestedHeaders.join(", ");
        if (headerAnswer) answer.set("access-control-allow-headers", headerAnswer);
        if (credentials) answer.set("access-control-allow-credentials", "true");
        if (maxAge !== null) answer.set("access-control-max-age", maxAge);
        return new Response(null, { status: 204, headers: answer });
      },
      onResponse(exchange, response) {
        const origin = exchange.state.get(STATE_KEY) as string | null | undefined;
        // Preflight answers of this policy already carry their headers.
        if (exchange.request.method === "OPTIONS" && exchange.request.headers.has("access-control-request-method") && origin === undefined) {
          return response;
        }
        const headers = mutableHeaders(response);
        const out = headers === response.headers ? response : new Response(response.body, { status: response.status, statusText: response.statusText, headers });
        // The gateway decides CORS: the upstream's own CORS headers never reach the client.
        for (const name of [...headers.keys()]) if (name.startsWith("access-control-")) headers.delete(name);
        appendVary(headers, "Origin");
        if (origin) {
          headers.set("access-control-allow-origin", wildcard ? "*" : origin);
          if (credentials) headers.set("access-control-allow-credentials", "true");
          if (exposeHeaders) headers.set("access-control-expose-headers", exposeHeaders);
        }
        return out;
      },
    };
  },
};

/** Lower-case names of `Access-Control-Request-Headers`; null when it is not a list of tokens. */
function parseHeaderList(value: string | null): string[] | null {
  if (value === null || value.trim() === "") return [];
  const names: string[] = [];
  for (const part of value.split(",")) {
    const name = part.trim().toLowerCase();
    if (name === "") continue;
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) return null;
    names.push(name);
  }
  return names;
}

/** The response's headers if they can be changed, else a copy to build a new Response with. */
function mutableHeaders(response: Response): Headers {
  try {
    response.headers.set("x-cors-probe", "1");
    response.headers.delete("x-cors-probe");
    return response.headers;
  } catch {
    return new Headers(response.headers);
  }
}

/** Adds a name to `Vary` unless it is there already (or `*`). */
function appendVary(headers: Headers, name: string): void {
  const current = headers.get("vary");
  if (current === null) {
    headers.set("vary", name);
    return;
  }
  const lower = name.toLowerCase();
  if (current.split(",").some((part) => ["*", lower].includes(part.trim().toLowerCase()))) return;
  headers.set("vary", `${current}, ${name}`);
}

/**
 * The built-in mock: a fixed response, or an echo of the request as JSON. Used by
 * `type: mock` upstreams and the `mock` policy so examples and tests need no backend.
 */
import type { Exchange } from "./exchange.ts";
import { durationSchema, parseDuration } from "./units.ts";

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/** JSON Schema of a mock definition. */
export const mockSchema = {
  type: "object",
  additionalProperties: false,
  description: "A fixed or echoed response served by the gateway itself.",
  properties: {
    status: { type: "integer", minimum: 200, maximum: 599 },
    headers: { type: "object", propertyNames: { pattern: HEADER_NAME }, additionalProperties: { type: "string" } },
    body: { type: "string" },
    json: { description: "A JSON value sent as the body with content-type application/json." },
    echo: { type: "boolean", description: "Answer with a JSON description of the request." },
    delay: { ...durationSchema, description: "Wait this long before answering." },
  },
} as const;

/** A mock as written in config. */
export interface MockConfig {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  json?: unknown;
  echo?: boolean;
  delay?: number | string;
}

/** A mock response definition, compiled. */
export interface MockResponse {
  status: number;
  headers: [string, string][];
  body: string | null;
  echo: boolean;
  delayMs: number;
}

/** Compiles a mock definition. */
export function compileMock(config: MockConfig): MockResponse {
  const headers: [string, string][] = Object.entries(config.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]);
  let body: string | null = config.body ?? null;
  if (config.json !== undefined) {
    body = JSON.stringify(config.json);
    if (!headers.some(([k]) => k === "content-type")) headers.push(["content-type", "application/json"]);
  } else if (body !== null && !headers.some(([k]) => k === "content-type")) {
    headers.push(["content-type", "text/plain; charset=utf-8"]);
  }
  return {
    status: config.status ?? 200,
    headers,
    body,
    echo: config.echo ?? false,
    delayMs: config.delay === undefined ? 0 : parseDuration(config.delay),
  };
}

/** Largest request body an echo mock reads back (larger bodies are counted, not echoed). */
const ECHO_BODY_LIMIT = 1024 * 1024;

/**
 * Answers a request from a mock. `path` and `headers` are what would have been sent
 * upstream, so an echo shows the effect of rewrites and header policies.
 */
export async function answerMock(
  mock: MockResponse,
  exchange: Exchange,
  path: string,
  headers: Headers,
  signal?: AbortSignal,
): Promise<Response> {
  if (mock.delayMs > 0) await sleep(mock.delayMs, signal);
  if (!mock.echo) {
    return new Response(mock.body, { status: mock.status, headers: mock.headers });
  }
  let body = "";
  let bodyBytes = 0;
  if (exchange.body) {
    const decoder = new TextDecoder();
    for await (const chunk of exchange.body as unknown as AsyncIterable<Uint8Array>) {
      bodyBytes += chunk.byteLength;
      if (bodyBytes <= ECHO_BODY_LIMIT) body += decoder.decode(chunk, { stream: true });
    }
    body += decoder.decode();
  }
  const echo = {
    method: exchange.request.method,
    path,
    headers: Object.fromEntries(headers),
    body: bodyBytes <= ECHO_BODY_LIMIT ? body : null,
    body_bytes: bodyBytes,
  };
  const out = new Headers(mock.headers);
  out.set("content-type", "application/json");
  return new Response(JSON.stringify(echo), { status: mock.status, headers: out });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

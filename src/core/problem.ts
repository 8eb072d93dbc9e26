/**
 * RFC 9457 problem details: every error the gateway itself answers with.
 */

/** The problems the gateway itself can answer with, by HTTP status. */
const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Base of the `type` URIs; each problem kind has a stable, documented slug. */
export const PROBLEM_TYPE_BASE = "urn:turnpike:problem:";

/** Options of a problem response. */
export interface ProblemOptions {
  status: number;
  /** Stable slug appended to the type URI, e.g. `upstream-timeout`. */
  kind: string;
  detail: string;
  requestId: string;
  headers?: Bun.HeadersInit;
  title?: string;
}

/** Builds an `application/problem+json` response with the request id in body and header. */
export function problem(options: ProblemOptions): Response {
  const body = JSON.stringify({
    type: PROBLEM_TYPE_BASE + options.kind,
    title: options.title ?? TITLES[options.status] ?? "Error",
    status: options.status,
    detail: options.detail,
    request_id: options.requestId,
  });
  const headers = new Headers(options.headers);
  headers.set("content-type", "application/problem+json");
  headers.set("x-request-id", options.requestId);
  headers.set("cache-control", "no-store");
  return new Response(body, { status: options.status, headers });
}

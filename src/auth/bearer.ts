/**
 * Bearer tokens (RFC 6750): reading the token and the challenges of a 401.
 */
import type { Exchange } from "../core/exchange.ts";
import { credentialsFor } from "./credentials-header.ts";
import { quoted, unauthorized } from "./responses.ts";

/** Characters of a b64token (RFC 6750 §2.1). */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** Where a policy looks for the token. */
export interface BearerSource {
  /** Query parameter also accepted (e.g. access_token), or null. */
  query: string | null;
}

/** The token of a request: `{token}`, `{token: null}` when absent, or `{malformed}` for a bad header. */
export function readBearer(exchange: Exchange, source: BearerSource): { token: string | null; fromQuery: boolean; malformed: boolean } {
  const header = exchange.request.headers.get("authorization");
  if (header !== null) {
    const token = credentialsFor(header, "Bearer");
    if (token === null || !B64TOKEN.test(token)) return { token: null, fromQuery: false, malformed: true };
    return { token, fromQuery: false, malformed: false };
  }
  if (source.query !== null && exchange.url.search.length > 1) {
    const token = exchange.url.searchParams.get(source.query);
    if (token !== null) return B64TOKEN.test(token) ? { token, fromQuery: true, malformed: false } : { token: null, fromQuery: true, malformed: true };
  }
  return { token: null, fromQuery: false, malformed: false };
}

/** Challenges of a token policy: no token, and a token that is not valid (RFC 6750 §3). */
export function bearerChallenges(realm: string): { missing: string[]; invalid: string[] } {
  const base = `Bearer realm=${quoted(realm)}`;
  return {
    missing: [base],
    invalid: [`${base}, error="invalid_token", error_description="The access token is not valid"`],
  };
}

/**
 * The token of a request for a token policy, or its 401: no token (the `missing`
 * challenge), a malformed header or a token over `maxSize` characters (`invalid`).
 */
export function bearerOrRefusal(
  exchange: Exchange,
  source: BearerSource,
  maxSize: number,
  challenges: { missing: readonly string[]; invalid: readonly string[] },
): { token: string; fromQuery: boolean } | Response {
  const { token, fromQuery, malformed } = readBearer(exchange, source);
  if (token === null) return malformed ? unauthorized(exchange, "invalid", challenges.invalid) : unauthorized(exchange, "missing", challenges.missing);
  if (token.length > maxSize) return unauthorized(exchange, "invalid", challenges.invalid);
  return { token, fromQuery };
}

/** Removes the token from what the upstream gets: the query parameter it came in, or Authorization. */
export function removeBearer(exchange: Exchange, source: BearerSource, fromQuery: boolean): void {
  if (fromQuery) exchange.url.searchParams.delete(source.query!);
  else exchange.upstreamHeaders.delete("authorization");
}

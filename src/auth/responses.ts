/**
 * The answers of authentication and authorization policies, all problem+json:
 * 401 with a `WWW-Authenticate` challenge, 403 for a caller who is known but not
 * allowed, 503 when an identity provider cannot be reached. The detail never says
 * which part of a credential was wrong.
 */
import type { Exchange } from "../core/exchange.ts";
import { problem } from "../core/problem.ts";

/** Why a request is refused with 401; the client only learns missing vs. not valid. */
export type AuthFailure = "missing" | "invalid";

const DETAIL: Record<AuthFailure, string> = {
  missing: "This resource needs credentials.",
  invalid: "The credentials are not valid.",
};

/** 401 with one `WWW-Authenticate` header per challenge (e.g. `Basic realm="api"`). */
/** Key of `exchange.state` where the latest 401's failure kind is recorded (read by `auth`). */
export const AUTH_FAILURE_STATE = "auth.failure";

export function unauthorized(exchange: Exchange, failure: AuthFailure, challenges: readonly string[]): Response {
  if (failure === "invalid" || !exchange.state.has(AUTH_FAILURE_STATE)) exchange.state.set(AUTH_FAILURE_STATE, failure);
  const headers = new Headers();
  for (const challenge of challenges) headers.append("www-authenticate", challenge);
  return problem({ status: 401, kind: "unauthorized", detail: DETAIL[failure], requestId: exchange.requestId, headers });
}

/** 403: the caller is known but may not do this. */
export function forbidden(exchange: Exchange, challenge?: string): Response {
  const headers = challenge ? { "www-authenticate": challenge } : undefined;
  return problem({ status: 403, kind: "forbidden", detail: "The caller may not do this.", requestId: exchange.requestId, headers });
}

/** 503: the identity provider (JWKS, introspection, discovery) could not be asked in time. */
export function authUnavailable(exchange: Exchange): Response {
  return problem({
    status: 503,
    kind: "auth-unavailable",
    detail: "The credentials cannot be checked right now.",
    requestId: exchange.requestId,
    headers: { "retry-after": "5" },
  });
}

/** A quoted-string for a challenge parameter (RFC 9110 §5.6.4). */
export function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, "\\$&")}"`;
}

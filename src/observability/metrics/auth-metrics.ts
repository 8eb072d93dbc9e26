/**
 * `turnpike_auth_rejections_total{route, policy, reason}`: requests that an identity or
 * access policy answered instead of the upstream. `policy` is the type of the policy that
 * answered (`api-key`, `jwt`, `auth` for a combination, `authorize`, `ip-restriction`…);
 * `reason` comes from the answer: `missing` or `invalid` credentials (401), `forbidden`
 * (403), `unavailable` (503: an identity provider or the store could not be asked), or
 * `status_<code>` for anything else.
 */
import { AUTH_FAILURE_STATE } from "../../auth/responses.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { Policy } from "../../core/policy.ts";
import type { Family, Registry } from "./registry.ts";

/** Access policies that do not authenticate but may refuse (authentication policies say so themselves). */
const ACCESS_POLICIES = new Set(["auth", "authorize", "ip-restriction"]);

/** Whether `policy` guards access: its refusals count as auth rejections. */
export function isAccessPolicy(policy: Policy): boolean {
  return policy.authentication === true || ACCESS_POLICIES.has(policy.type);
}

/** The reason label of an access policy's answer. */
export function rejectionReason(exchange: Exchange, status: number): string {
  if (status === 401) {
    const failure = exchange.state.get(AUTH_FAILURE_STATE);
    return failure === "missing" ? "missing" : "invalid";
  }
  if (status === 403) return "forbidden";
  if (status === 503) return "unavailable";
  return `status_${status}`;
}

export class AuthMetrics {
  readonly #rejections: Family;

  constructor(registry: Registry) {
    this.#rejections = registry.counter(
      "turnpike_auth_rejections_total",
      "Requests refused by identity and access policies, by route, the policy that answered and reason (missing, invalid, forbidden, unavailable).",
      ["route", "policy", "reason"],
    );
  }

  /** Counts the answer when an access policy gave it (called only when a policy answered). */
  count(route: string, exchange: Exchange, answeredBy: Policy, status: number): void {
    if (status < 400 || !isAccessPolicy(answeredBy)) return;
    this.#rejections.series(route, answeredBy.type, rejectionReason(exchange, status)).values[0]!++;
  }
}

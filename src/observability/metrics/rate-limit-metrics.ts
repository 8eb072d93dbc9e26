/**
 * `turnpike_rate_limit_rejections_total{route, reason}`: requests the rate-limit policy
 * refused, counted from its decisions on the exchange (`rate-limit:reject:<reason>`):
 * `limit` (a rate limit or quota, 429), `concurrency` (too many in flight, 429),
 * `store_unavailable` (the store failed and the limit fails closed, 503).
 */
import type { Family, Registry } from "./registry.ts";

const PREFIX = "rate-limit:reject:";

export class RateLimitMetrics {
  readonly #rejections: Family;

  constructor(registry: Registry) {
    this.#rejections = registry.counter("turnpike_rate_limit_rejections_total", "Requests refused by rate limits, by route and reason (limit, concurrency, store_unavailable).", ["route", "reason"]);
  }

  /** Counts the rejections among a request's decisions (called only when there are decisions). */
  count(route: string, decisions: readonly string[]): void {
    for (const decision of decisions) {
      if (decision.startsWith(PREFIX)) this.#rejections.series(route, decision.slice(PREFIX.length)).values[0]!++;
    }
  }
}

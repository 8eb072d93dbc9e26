/**
 * `auth`: combines authentication methods on one route.
 *
 * - `any_of`: the methods are tried in order and the first that accepts the request
 *   wins; when none does, the answer is 503 if a provider was unavailable, else one 401
 *   carrying every method's challenge.
 * - `all_of`: every method must accept the request and all must name the same consumer
 *   (their roles, scopes and claims are merged).
 *
 *     - type: auth
 *       config:
 *         any_of:
 *           - type: api-key
 *           - type: jwt
 *             config: { jwks_url: https://idp.example.com/jwks.json }
 */
import { AUTH_FAILURE_STATE, unauthorized, type AuthFailure } from "../../auth/responses.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";

interface AuthConfig {
  any_of?: { type: string; config?: Record<string, unknown> }[];
  all_of?: { type: string; config?: Record<string, unknown> }[];
}

const methods = { type: "array", minItems: 1, items: { $ref: "#/$defs/policy" }, description: "Authentication policies (type and config)." };

export const authPolicy: PolicyFactory<AuthConfig> = {
  type: "auth",
  description: "Combine authentication methods on a route: any_of (first that accepts) or all_of (every one).",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: { any_of: methods, all_of: methods },
    "x-expects": "any_of or all_of",
    oneOf: [{ required: ["any_of"] }, { required: ["all_of"] }],
  },
  create(config, context) {
    const mode = config.any_of ? "any_of" : "all_of";
    const entries = config.any_of ?? config.all_of ?? [];
    const children: Policy[] = [];
    let broken = false;
    entries.forEach((entry, i) => {
      const child = context.createPolicy(entry, [mode, i]);
      if (child === null) broken = true;
      else if (!child.authentication || !child.onRequest) throw new Error(`${mode}[${i}]: "${entry.type}" is not an authentication policy`);
      else children.push(child);
    });
    // Errors of the nested entries are already reported at their own paths.
    if (broken) return { type: "auth" };

    if (mode === "all_of") {
      return {
        type: "auth",
        async onRequest(exchange) {
          for (const child of children) {
            const outcome = await child.onRequest!(exchange);
            if (outcome) return outcome;
          }
          return undefined;
        },
      };
    }
    return {
      type: "auth",
      async onRequest(exchange) {
        const refusals: Response[] = [];
        let failure: AuthFailure = "missing";
        for (const child of children) {
          exchange.state.delete(AUTH_FAILURE_STATE);
          const outcome = await child.onRequest!(exchange);
          if (!outcome) return undefined;
          if (exchange.state.get(AUTH_FAILURE_STATE) === "invalid") failure = "invalid";
          refusals.push(outcome);
        }
        return combineRefusals(exchange, refusals, failure);
      },
    };
  },
};

/** One answer for the refusals of every method: an unavailable provider wins, else a 401 with all challenges. */
function combineRefusals(exchange: Exchange, refusals: Response[], failure: AuthFailure): Response {
  const chosen = refusals.find((response) => response.status === 503) ?? refusals.find((response) => response.status !== 401);
  if (chosen) return chosen;
  // Headers join repeated fields with ", ", which is also how several challenges may be sent.
  const challenges = refusals.map((response) => response.headers.get("www-authenticate")).filter((value): value is string => value !== null);
  return unauthorized(exchange, failure, challenges);
}

/**
 * `authorize`: decides whether the identified consumer may make this request, per
 * method, by roles, groups, scopes, consumer names or claim conditions. Rules are
 * alternatives: the request is allowed when one rule that applies to its method holds;
 * otherwise 403 (401 when nobody was identified). Runs after an authentication policy.
 *
 *     - type: authorize
 *       config:
 *         rules:
 *           - methods: [GET, HEAD]
 *             scopes: [orders:read]
 *           - methods: [POST, PUT, DELETE]
 *             roles: [admin]
 *             claims: { tenant: acme, email_verified: true }
 */
import { claimAt } from "../../auth/consumer-headers.ts";
import { forbidden, quoted, unauthorized } from "../../auth/responses.ts";
import type { Consumer } from "../../core/consumer.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";

type ClaimCondition = string | number | boolean | (string | number | boolean)[] | { equals?: unknown; one_of?: unknown[]; contains?: unknown; present?: boolean };

interface RuleConfig {
  methods?: string[];
  consumers?: string[];
  roles?: string[];
  groups?: string[];
  scopes?: string[];
  claims?: Record<string, ClaimCondition>;
}

interface AuthorizeConfig {
  rules: RuleConfig[];
}

const names = { type: "array", minItems: 1, items: { type: "string", minLength: 1 } };
const scalar = { type: ["string", "number", "boolean"] };

export const authorizePolicy: PolicyFactory<AuthorizeConfig> = {
  type: "authorize",
  description: "Allow the identified consumer by method, roles, groups, scopes, names or claim conditions (else 403).",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["rules"],
    properties: {
      rules: {
        type: "array",
        minItems: 1,
        description: "Alternatives: one rule that applies to the method and holds allows the request.",
        items: {
          type: "object",
          additionalProperties: false,
          properties: {
            methods: { ...names, items: { type: "string", pattern: "^[A-Za-z]+$" }, description: "Methods the rule applies to; default all." },
            consumers: { ...names, description: "Any of these consumer names." },
            roles: { ...names, description: "Any of these roles." },
            groups: { ...names, description: "Any of these groups." },
            scopes: { ...names, description: "All of these scopes." },
            claims: {
              type: "object",
              minProperties: 1,
              description: "Claim (dots for nested claims) → condition; all must hold.",
              additionalProperties: {
                "x-expects": "a value, a list of values, or {equals|one_of|contains|present}",
                anyOf: [
                  scalar,
                  { type: "array", minItems: 1, items: scalar },
                  {
                    type: "object",
                    additionalProperties: false,
                    minProperties: 1,
                    properties: { equals: {}, one_of: { type: "array", minItems: 1 }, contains: {}, present: { type: "boolean" } },
                  },
                ],
              },
            },
          },
        },
      },
    },
  },
  create(config) {
    const rules = config.rules.map(compileRule);
    const policy: Policy = {
      type: "authorize",
      onRequest(exchange) {
        const consumer = exchange.consumer;
        if (consumer === null) return unauthorized(exchange, "missing", ['Bearer realm="turnpike"']);
        const method = exchange.request.method;
        let scopeHint: readonly string[] | null = null;
        for (const rule of rules) {
          if (rule.methods && !rule.methods.has(method)) continue;
          if (rule.test(consumer)) return undefined;
          if (scopeHint === null && rule.scopes.length > 0) scopeHint = rule.scopes;
        }
        // A bearer caller lacking scopes gets RFC 6750's insufficient_scope.
        const bearer = consumer.methods.some((m) => m === "jwt" || m === "oauth2-introspection");
        return forbidden(exchange, bearer && scopeHint ? `Bearer error="insufficient_scope", scope=${quoted(scopeHint.join(" "))}` : undefined);
      },
    };
    return policy;
  },
};

interface CompiledRule {
  methods: ReadonlySet<string> | null;
  scopes: readonly string[];
  test(consumer: Consumer): boolean;
}

function compileRule(rule: RuleConfig): CompiledRule {
  const tests: ((consumer: Consumer) => boolean)[] = [];
  if (rule.consumers) {
    const allowed = new Set(rule.consumers);
    tests.push((c) => allowed.has(c.name));
  }
  if (rule.roles) {
    const wanted = rule.roles;
    tests.push((c) => wanted.some((role) => c.roles.includes(role)));
  }
  if (rule.groups) {
    const wanted = rule.groups;
    tests.push((c) => wanted.some((group) => c.groups.includes(group)));
  }
  if (rule.scopes) {
    const wanted = rule.scopes;
    tests.push((c) => wanted.every((scope) => c.scopes.includes(scope)));
  }
  for (const [claim, condition] of Object.entries(rule.claims ?? {})) {
    const path = claim.split(".");
    const check = compileClaimCondition(condition);
    tests.push((c) => check(claimAt(c.claims, path)));
  }
  return {
    methods: rule.methods ? new Set(rule.methods.map((m) => m.toUpperCase())) : null,
    scopes: rule.scopes ?? [],
    test: (consumer) => tests.every((test) => test(consumer)),
  };
}

function compileClaimCondition(condition: ClaimCondition): (value: unknown) => boolean {
  if (Array.isArray(condition)) return (value) => condition.some((option) => option === value);
  if (condition === null || typeof condition !== "object") return (value) => value === condition;
  const checks: ((value: unknown) => boolean)[] = [];
  if (condition.present !== undefined) {
    const present = condition.present;
    checks.push((value) => (value !== undefined && value !== null) === present);
  }
  if (condition.equals !== undefined) {
    const expected = JSON.stringify(condition.equals);
    checks.push((value) => value !== undefined && JSON.stringify(value) === expected);
  }
  if (condition.one_of !== undefined) {
    const options = condition.one_of;
    checks.push((value) => options.some((option) => option === value));
  }
  if (condition.contains !== undefined) {
    const item = condition.contains;
    // An array claim holds the item, or a string claim holds it as a space-separated word.
    checks.push((value) => (Array.isArray(value) ? value.includes(item) : typeof value === "string" && typeof item === "string" && value.split(" ").includes(item)));
  }
  return (value) => checks.every((check) => check(value));
}

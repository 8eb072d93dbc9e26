/**
 * From the claims of a verified token (JWT or introspection answer) to the consumer:
 * a configured consumer whose `jwt` credential matches a claim, else a caller named by
 * a claim (default `sub`). Roles and scopes are read from configurable claims.
 *
 *     consumer:
 *       name_claim: sub                  # default
 *       roles_claim: realm_access.roles  # array, or a space/comma-separated string
 *       scopes_claim: scope              # default: scope (space-separated), else scp
 *       require_configured: false        # true: only tokens of configured consumers
 */
import type { Consumer, ConsumerDirectory, ConsumerRecord } from "../core/consumer.ts";
import { claimAt } from "./consumer-headers.ts";

/** The `consumer` mapping of a token policy, as written. */
export interface TokenConsumerConfig {
  name_claim?: string;
  roles_claim?: string;
  scopes_claim?: string;
  require_configured?: boolean;
}

/** JSON Schema of the mapping. */
export const tokenConsumerSchema = {
  type: "object",
  additionalProperties: false,
  description: "How a token's claims name the consumer and its roles and scopes.",
  properties: {
    name_claim: { type: "string", minLength: 1, description: "Claim naming a caller that is not a configured consumer; default sub." },
    roles_claim: { type: "string", minLength: 1, description: "Claim holding roles (dots for nested claims, e.g. realm_access.roles)." },
    scopes_claim: { type: "string", minLength: 1, description: "Claim holding scopes; default scope, else scp." },
    require_configured: { type: "boolean", description: "Refuse tokens that match no configured consumer (jwt credential); default false." },
  },
};

/** Maps claims to a consumer; null when the token names nobody acceptable. */
export type TokenConsumerMapper = (claims: Record<string, unknown>) => Consumer | null;

/** Compiles the mapping against the configured consumers' `jwt` credentials. */
export function compileTokenConsumer(config: TokenConsumerConfig | undefined, directory: ConsumerDirectory, method: string): TokenConsumerMapper {
  const nameClaim = (config?.name_claim ?? "sub").split(".");
  const rolesClaim = config?.roles_claim?.split(".") ?? null;
  const scopesClaim = config?.scopes_claim?.split(".") ?? null;
  const requireConfigured = config?.require_configured ?? false;
  // claim name → (value → [{issuer, consumer}])
  const index = new Map<string, Map<string, { issuer: string | null; record: ConsumerRecord }[]>>();
  for (const { consumer, credential } of directory.credentials("jwt")) {
    const claim = (credential.claim as string | undefined) ?? "sub";
    const value = (credential.subject ?? credential.value) as string;
    let byValue = index.get(claim);
    if (!byValue) index.set(claim, (byValue = new Map()));
    let list = byValue.get(value);
    if (!list) byValue.set(value, (list = []));
    list.push({ issuer: (credential.issuer as string | undefined) ?? null, record: consumer });
  }

  return (claims) => {
    const record = findConfigured(index, claims);
    if (record === null && requireConfigured) return null;
    const tokenRoles = rolesClaim ? stringList(claimAt(claims, rolesClaim)) : [];
    const scopes = stringList(scopesClaim ? claimAt(claims, scopesClaim) : (claims.scope ?? claims.scp));
    if (record !== null) {
      return {
        name: record.name,
        roles: tokenRoles.length ? [...new Set([...record.roles, ...tokenRoles])] : record.roles,
        groups: record.groups,
        scopes,
        claims,
        metadata: record.metadata,
        methods: [method],
      };
    }
    const name = claimAt(claims, nameClaim) ?? claims.client_id ?? claims.azp ?? claims.username;
    if (typeof name !== "string" || name.length === 0) return null;
    return { name, roles: tokenRoles, groups: [], scopes, claims, metadata: {}, methods: [method] };
  };
}

function findConfigured(index: Map<string, Map<string, { issuer: string | null; record: ConsumerRecord }[]>>, claims: Record<string, unknown>): ConsumerRecord | null {
  for (const [claim, byValue] of index) {
    const value = claims[claim];
    if (typeof value !== "string") continue;
    const candidates = byValue.get(value);
    if (!candidates) continue;
    for (const candidate of candidates) if (candidate.issuer === null || candidate.issuer === claims.iss) return candidate.record;
  }
  return null;
}

/** Strings of an array claim, or of a space/comma-separated string claim. */
function stringList(value: unknown): string[] {
  if (typeof value === "string") return value.split(/[\s,]+/).filter((part) => part.length > 0);
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === "string");
  return [];
}

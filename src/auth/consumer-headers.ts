/**
 * Forwarding the consumer to the upstream as headers (top-level `consumer_headers:`).
 * Client-sent copies of every configured header are removed from every request first,
 * so an upstream can trust them: only the gateway sets them, and only for a caller it
 * identified.
 *
 *     consumer_headers:
 *       name: X-Consumer-ID          # defaults shown
 *       roles: X-Consumer-Roles
 *       groups: X-Consumer-Groups
 *       scopes: X-Consumer-Scopes
 *       metadata: { X-Consumer-Plan: plan }
 *       claims: { X-User-Email: email }
 */
import type { Consumer } from "../core/consumer.ts";

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/** The config of `consumer_headers`, as written. */
export interface ConsumerHeadersConfig {
  enabled?: boolean;
  name?: string;
  roles?: string;
  groups?: string;
  scopes?: string;
  metadata?: Record<string, string>;
  claims?: Record<string, string>;
}

const headerName = { type: "string", pattern: HEADER_NAME };

/** JSON Schema of `consumer_headers`. */
export const consumerHeadersSchema = {
  type: "object",
  additionalProperties: false,
  description: "Headers that tell the upstream who called; client-sent copies are always removed.",
  properties: {
    enabled: { type: "boolean", description: "Default true." },
    name: { ...headerName, description: "Consumer name; default X-Consumer-ID." },
    roles: { ...headerName, description: "Comma-separated roles; default X-Consumer-Roles." },
    groups: { ...headerName, description: "Comma-separated groups; default X-Consumer-Groups." },
    scopes: { ...headerName, description: "Space-separated scopes; default X-Consumer-Scopes." },
    metadata: { type: "object", propertyNames: { pattern: HEADER_NAME }, additionalProperties: { type: "string", minLength: 1 }, description: "Header name → metadata key." },
    claims: { type: "object", propertyNames: { pattern: HEADER_NAME }, additionalProperties: { type: "string", minLength: 1 }, description: "Header name → token claim (dots for nested claims)." },
  },
};

/** Compiled forwarding rules of one config generation. */
export interface ConsumerHeaders {
  /** Lower-case names removed from every upstream request. */
  readonly names: readonly string[];
  /** Removes client-sent copies. */
  strip(headers: Headers): void;
  /** Sets the headers for an identified consumer. */
  write(headers: Headers, consumer: Consumer): void;
}

/** Compiles `consumer_headers` (defaults when absent); null when disabled. */
export function compileConsumerHeaders(config: ConsumerHeadersConfig | undefined): ConsumerHeaders | null {
  if (config?.enabled === false) return null;
  const name = (config?.name ?? "X-Consumer-ID").toLowerCase();
  const roles = (config?.roles ?? "X-Consumer-Roles").toLowerCase();
  const groups = (config?.groups ?? "X-Consumer-Groups").toLowerCase();
  const scopes = (config?.scopes ?? "X-Consumer-Scopes").toLowerCase();
  const metadata = Object.entries(config?.metadata ?? {}).map(([header, key]) => [header.toLowerCase(), key] as const);
  const claims = Object.entries(config?.claims ?? {}).map(([header, claim]) => [header.toLowerCase(), claim.split(".")] as const);
  const names = [...new Set([name, roles, groups, scopes, ...metadata.map(([h]) => h), ...claims.map(([h]) => h)])];
  return {
    names,
    strip(headers) {
      for (const header of names) headers.delete(header);
    },
    write(headers, consumer) {
      headers.set(name, headerValue(consumer.name));
      if (consumer.roles.length > 0) headers.set(roles, headerValue(consumer.roles.join(",")));
      if (consumer.groups.length > 0) headers.set(groups, headerValue(consumer.groups.join(",")));
      if (consumer.scopes.length > 0) headers.set(scopes, headerValue(consumer.scopes.join(" ")));
      for (const [header, key] of metadata) {
        const value = consumer.metadata[key];
        if (value !== undefined && value !== null) headers.set(header, headerValue(typeof value === "string" ? value : JSON.stringify(value)));
      }
      for (const [header, path] of claims) {
        const value = claimAt(consumer.claims, path);
        if (value !== undefined && value !== null) headers.set(header, headerValue(typeof value === "string" ? value : JSON.stringify(value)));
      }
    },
  };
}

/** A claim by path (`["realm_access", "roles"]`), undefined when absent. */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let node: unknown = claims;
  for (const part of path) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** A value safe for a header: printable ASCII as is, anything else percent-encoded (no CR/LF injection). */
function headerValue(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(value);
  }
  return value;
}

/**
 * `api-key`: identifies the consumer by an API key in a header or a query parameter.
 * Keys are configured as SHA-256 hashes on consumers (`credentials: [{type: api_key,
 * key_hash: sha256:...}]`); the request's key is hashed and looked up, then compared
 * in constant time. The key is removed before forwarding unless `forward_key` is set.
 *
 *     - type: api-key
 *       config: { header: apikey }          # or { query: api_key }, or both
 */
import { identify } from "../../auth/identity.ts";
import { quoted, unauthorized } from "../../auth/responses.ts";
import { constantTimeEqual, hashApiKey } from "../../auth/secrets.ts";
import { consumerFromRecord, type Consumer } from "../../core/consumer.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";

interface ApiKeyConfig {
  header?: string;
  query?: string;
  forward_key?: boolean;
  realm?: string;
}

/** Keys longer than this are refused without hashing. */
const MAX_KEY_LENGTH = 1024;

export const apiKeyPolicy: PolicyFactory<ApiKeyConfig> = {
  type: "api-key",
  description: "Identify the consumer by an API key in a header or query parameter (keys stored as SHA-256 hashes).",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      header: { type: "string", pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: "Header holding the key; default apikey (when query is not set)." },
      query: { type: "string", minLength: 1, description: "Query parameter holding the key." },
      forward_key: { type: "boolean", description: "Send the key to the upstream too; default false." },
      realm: { type: "string", description: "Realm in the WWW-Authenticate challenge; default turnpike." },
    },
  },
  create(config, context) {
    const header = config.header?.toLowerCase() ?? (config.query ? null : "apikey");
    const query = config.query ?? null;
    const forward = config.forward_key ?? false;
    const challenge = `ApiKey realm=${quoted(config.realm ?? "turnpike")}${header ? `, header=${quoted(header)}` : ""}`;
    const challenges = [challenge];
    // The lookup is keyed by the hash: one SHA-256 and one map lookup per request.
    const byHash = new Map<string, { hash: string; consumer: Consumer }>();
    for (const { consumer, credential } of context.consumers.credentials("api_key")) {
      const hash = credential.key_hash as string;
      byHash.set(hash, { hash, consumer: consumerFromRecord(consumer, "api-key") });
    }

    const policy: Policy = {
      type: "api-key",
      authentication: true,
      secrets: { headers: header ? [header] : [], queryParams: query ? [query] : [] },
      onRequest(exchange) {
        let key: string | null = header ? exchange.request.headers.get(header) : null;
        let fromQuery = false;
        if (key === null && query !== null && exchange.url.search.length > 1) {
          key = exchange.url.searchParams.get(query);
          fromQuery = key !== null;
        }
        if (key === null || key.length === 0) return unauthorized(exchange, "missing", challenges);
        if (key.length > MAX_KEY_LENGTH) return unauthorized(exchange, "invalid", challenges);
        const hash = hashApiKey(key);
        const found = byHash.get(hash);
        if (!found || !constantTimeEqual(found.hash, hash)) return unauthorized(exchange, "invalid", challenges);
        if (!identify(exchange, found.consumer)) return unauthorized(exchange, "invalid", challenges);
        if (!forward) {
          if (fromQuery) exchange.url.searchParams.delete(query!);
          else exchange.upstreamHeaders.delete(header!);
        }
        return undefined;
      },
    };
    return policy;
  },
};

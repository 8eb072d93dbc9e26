/**
 * `oauth2-introspection`: asks an authorization server whether a bearer token is active
 * (RFC 7662), authenticating as a client (HTTP Basic or form fields). Active answers are
 * remembered until the token's `exp` (at most `cache_max_ttl`), inactive ones for
 * `negative_ttl`; both keyed by a SHA-256 of the token, in a bounded cache. The
 * endpoint may be found by OIDC discovery from `issuer`.
 *
 *     - type: oauth2-introspection
 *       config:
 *         endpoint: https://idp.example.com/oauth2/introspect
 *         client_id: gateway
 *         client_secret: ${INTROSPECTION_SECRET}
 */
import { bearerChallenges, bearerOrRefusal, removeBearer } from "../../auth/bearer.ts";
import { ExpiringCache } from "../../auth/cache.ts";
import { identify } from "../../auth/identity.ts";
import { OidcDiscovery } from "../../auth/oidc.ts";
import { ProviderWatch } from "../../auth/provider-watch.ts";
import { fetchJson, ProviderUnavailable } from "../../auth/remote.ts";
import { authUnavailable, unauthorized } from "../../auth/responses.ts";
import { sha256Hex } from "../../auth/secrets.ts";
import { compileTokenConsumer, tokenConsumerSchema, type TokenConsumerConfig } from "../../auth/token-consumer.ts";
import type { Consumer } from "../../core/consumer.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";

interface IntrospectionConfig {
  endpoint?: string;
  issuer?: string;
  client_id: string;
  client_secret: string;
  client_auth?: "basic" | "post";
  token_type_hint?: string;
  audience?: string | string[];
  timeout?: string | number;
  cache_size?: number;
  cache_max_ttl?: string | number;
  negative_ttl?: string | number;
  max_token_size?: number;
  query?: string;
  forward_token?: boolean;
  consumer?: TokenConsumerConfig;
  on_unavailable?: 401 | 503;
  realm?: string;
}

/** A cached answer: the consumer of an active token, or null for an inactive one. */
type CachedAnswer = { consumer: Consumer | null };

export const oauth2IntrospectionPolicy: PolicyFactory<IntrospectionConfig> = {
  type: "oauth2-introspection",
  description: "Check a bearer token with an OAuth2 introspection endpoint (RFC 7662), cached; identify the consumer from its answer.",
  schema: {
    type: "object",
    additionalProperties: false,
    required: ["client_id", "client_secret"],
    properties: {
      endpoint: { type: "string", pattern: "^https?://", description: "Introspection endpoint URL." },
      issuer: { type: "string", pattern: "^https?://", description: "Find the endpoint by OIDC discovery from this issuer." },
      client_id: { type: "string", minLength: 1 },
      client_secret: { type: "string", minLength: 1, description: "Best from ${ENV}." },
      client_auth: { enum: ["basic", "post"], description: "client_secret_basic (default) or client_secret_post." },
      token_type_hint: { type: "string", minLength: 1, description: "Default access_token." },
      audience: { anyOf: [{ type: "string", minLength: 1 }, { type: "array", minItems: 1, items: { type: "string", minLength: 1 } }], "x-expects": "a string or a list of strings", description: "Accepted aud values." },
      timeout: { ...durationSchema, description: "Time bound of one introspection call; default 3s." },
      cache_size: { type: "integer", minimum: 0, description: "Answers remembered per worker; default 10000." },
      cache_max_ttl: { ...durationSchema, description: "Longest an active answer is remembered (never past exp); default 5m." },
      negative_ttl: { ...durationSchema, description: "How long an inactive answer is remembered; default 10s." },
      max_token_size: { type: "integer", minimum: 16, description: "Longest token sent for introspection; default 8192." },
      query: { type: "string", minLength: 1, description: "Also accept the token in this query parameter." },
      forward_token: { type: "boolean", description: "Send the token to the upstream; default true." },
      consumer: tokenConsumerSchema,
      on_unavailable: { enum: [401, 503], description: "Answer when the endpoint cannot be asked; default 503." },
      realm: { type: "string", pattern: '^[^"\\\\]*$', description: "Realm of the challenge; default turnpike." },
    },
  },
  validate(config) {
    if ((config.endpoint === undefined) === (config.issuer === undefined)) return [{ path: [], message: "set either endpoint, or issuer (OIDC discovery)" }];
    return [];
  },
  create(config, context) {
    const challenges = bearerChallenges(config.realm ?? "turnpike");
    const timeoutMs = parseDuration(config.timeout ?? "3s");
    const watch = new ProviderWatch(context.log, context.path);
    const discovery = config.issuer ? new OidcDiscovery(config.issuer, timeoutMs, undefined, undefined, undefined, watch) : null;
    const endpoint = config.endpoint;
    const basicAuth = (config.client_auth ?? "basic") === "basic";
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(config.client_id)}:${encodeURIComponent(config.client_secret)}`).toString("base64")}`;
    const hint = config.token_type_hint ?? "access_token";
    const audiences = config.audience === undefined ? null : new Set(Array.isArray(config.audience) ? config.audience : [config.audience]);
    const cache = new ExpiringCache<CachedAnswer>(config.cache_size ?? 10_000);
    const maxTtl = parseDuration(config.cache_max_ttl ?? "5m");
    const negativeTtl = parseDuration(config.negative_ttl ?? "10s");
    const maxSize = config.max_token_size ?? 8192;
    const source = { query: config.query ?? null };
    const forward = config.forward_token ?? true;
    const toConsumer = compileTokenConsumer(config.consumer, context.consumers, "oauth2-introspection");
    const unavailable = config.on_unavailable ?? 503;
    const pending = new Map<string, Promise<CachedAnswer>>();

    async function introspect(token: string): Promise<CachedAnswer> {
      const url = endpoint ?? (await discovery!.endpoint("introspection_endpoint"));
      const form = new URLSearchParams({ token, token_type_hint: hint });
      const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
      if (basicAuth) headers.authorization = authorization;
      else {
        form.set("client_id", config.client_id);
        form.set("client_secret", config.client_secret);
      }
      let body: unknown;
      try {
        ({ body } = await fetchJson(url, timeoutMs, { method: "POST", headers, body: form.toString() }));
        if (!body || typeof body !== "object" || typeof (body as { active?: unknown }).active !== "boolean") {
          throw new ProviderUnavailable(`${url} gave no "active" field`);
        }
      } catch (error) {
        watch.failed(url, error as Error);
        throw error;
      }
      watch.succeeded(url);
      const claims = body as Record<string, unknown>;
      if (claims.active !== true || !audienceMatches(claims.aud, audiences)) return { consumer: null };
      if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) return { consumer: null };
      return { consumer: toConsumer(claims) };
    }

    const refuse = (exchange: Exchange) => unauthorized(exchange, "invalid", challenges.invalid);

    const policy: Policy = {
      type: "oauth2-introspection",
      authentication: true,
      secrets: { queryParams: source.query ? [source.query] : [] },
      async onRequest(exchange) {
        const bearer = bearerOrRefusal(exchange, source, maxSize, challenges);
        if (bearer instanceof Response) return bearer;
        const { token, fromQuery } = bearer;
        const key = sha256Hex(token);
        let answer = cache.get(key);
        if (answer === undefined) {
          let check = pending.get(key);
          if (!check) {
            // Concurrent requests with one token share one call to the endpoint.
            check = introspect(token);
            pending.set(key, check);
            check.then(
              () => pending.delete(key),
              () => pending.delete(key),
            );
          }
          try {
            answer = await check;
          } catch (error) {
            if (error instanceof ProviderUnavailable && unavailable === 503) return authUnavailable(exchange);
            return refuse(exchange);
          }
          const now = Date.now();
          const exp = typeof answer.consumer?.claims.exp === "number" ? (answer.consumer.claims.exp as number) * 1000 : Infinity;
          cache.set(key, answer, answer.consumer ? Math.min(exp, now + maxTtl) : now + negativeTtl);
        }
        if (answer.consumer === null) return refuse(exchange);
        if (!identify(exchange, answer.consumer)) return refuse(exchange);
        if (!forward) removeBearer(exchange, source, fromQuery);
        return undefined;
      },
    };
    return policy;
  },
};

function audienceMatches(aud: unknown, accepted: ReadonlySet<string> | null): boolean {
  if (accepted === null) return true;
  if (typeof aud === "string") return accepted.has(aud);
  return Array.isArray(aud) && aud.some((value) => typeof value === "string" && accepted.has(value));
}

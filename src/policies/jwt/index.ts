/**
 * `jwt`: verifies a bearer JWT (HS*, RS*, PS*, ES*, EdDSA via jose) against static keys,
 * a JWKS URL or the JWKS found by OIDC discovery; checks exp, nbf, iss, aud and required
 * claims with a clock skew; maps claims to the consumer. A verified token is remembered
 * (keyed by its SHA-256) until it expires, so a hot token costs a hash and a lookup.
 *
 *     - type: jwt
 *       config:
 *         jwks_url: https://idp.example.com/.well-known/jwks.json
 *         issuer: https://idp.example.com/
 *         audience: orders-api
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTVerifyGetKey, type JWTVerifyOptions } from "jose";
import { bearerChallenges, bearerOrRefusal, removeBearer } from "../../auth/bearer.ts";
import { ExpiringCache } from "../../auth/cache.ts";
import { identify } from "../../auth/identity.ts";
import { RemoteKeySet } from "../../auth/jwks.ts";
import { OidcDiscovery } from "../../auth/oidc.ts";
import { ProviderWatch } from "../../auth/provider-watch.ts";
import { ProviderUnavailable } from "../../auth/remote.ts";
import { authUnavailable, unauthorized } from "../../auth/responses.ts";
import { sha256Hex } from "../../auth/secrets.ts";
import { compileTokenConsumer, tokenConsumerSchema, type TokenConsumerConfig } from "../../auth/token-consumer.ts";
import type { Consumer } from "../../core/consumer.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";
import { ALL_ALGORITHMS, ASYMMETRIC_ALGORITHMS, algorithmsFor, loadStaticKeys, type KeyConfig } from "./keys.ts";

interface JwtConfig {
  secret?: string;
  keys?: KeyConfig[];
  jwks_url?: string;
  discovery?: boolean;
  issuer?: string | string[];
  audience?: string | string[];
  algorithms?: string[];
  required_claims?: string[];
  clock_skew?: string | number;
  max_token_size?: number;
  query?: string;
  forward_token?: boolean;
  consumer?: TokenConsumerConfig;
  cache_size?: number;
  cache_max_ttl?: string | number;
  jwks?: { timeout?: string | number; min_refresh_interval?: string | number; default_ttl?: string | number; max_ttl?: string | number };
  on_unavailable?: 401 | 503;
  realm?: string;
}

const stringOrList = { anyOf: [{ type: "string", minLength: 1 }, { type: "array", minItems: 1, items: { type: "string", minLength: 1 } }], "x-expects": "a string or a list of strings" };

export const jwtPolicy: PolicyFactory<JwtConfig> = {
  type: "jwt",
  description: "Verify a bearer JWT (static keys, JWKS URL or OIDC discovery) and identify the consumer from its claims.",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      secret: { type: "string", minLength: 32, "x-secret": true, description: "Shared secret for HS256/384/512 (at least 32 characters; best from ${ENV})." },
      keys: {
        type: "array",
        items: {
          type: "object",
          additionalProperties: false,
          properties: {
            file: { type: "string", minLength: 1, description: "PEM public key or certificate, relative to the config file." },
            pem: { type: "string", minLength: 1, description: "PEM public key or certificate text." },
            jwk: { type: "object", required: ["kty"], description: "A public JWK." },
            kid: { type: "string", description: "Key id tokens name in their header." },
            alg: { enum: ALL_ALGORITHMS, description: "The only algorithm this key verifies." },
          },
          "x-expects": "one of file, pem or jwk",
          oneOf: [{ required: ["file"] }, { required: ["pem"] }, { required: ["jwk"] }],
        },
      },
      jwks_url: { type: "string", pattern: "^https?://", description: "URL of a JWKS." },
      discovery: { type: "boolean", description: "Find the JWKS by OIDC discovery from `issuer`." },
      issuer: { ...stringOrList, description: "Accepted `iss` values." },
      audience: { ...stringOrList, description: "Accepted `aud` values (one must match)." },
      algorithms: { type: "array", minItems: 1, items: { enum: ALL_ALGORITHMS }, description: "Accepted algorithms; default: those the keys can verify." },
      required_claims: { type: "array", items: { type: "string", minLength: 1 }, description: "Claims every token must have." },
      clock_skew: { ...durationSchema, description: "Tolerance for exp and nbf; default 30s." },
      max_token_size: { type: "integer", minimum: 64, description: "Longest token looked at, in characters; default 8192." },
      query: { type: "string", minLength: 1, description: "Also accept the token in this query parameter." },
      forward_token: { type: "boolean", description: "Send the token to the upstream; default true." },
      consumer: tokenConsumerSchema,
      cache_size: { type: "integer", minimum: 0, description: "Verified tokens remembered per worker; default 10000 (0: none)." },
      cache_max_ttl: { ...durationSchema, description: "Longest a verified token is remembered (never past its exp); default 5m." },
      jwks: {
        type: "object",
        additionalProperties: false,
        properties: {
          timeout: { ...durationSchema, description: "Time bound of a JWKS or discovery fetch; default 3s." },
          min_refresh_interval: { ...durationSchema, description: "Shortest time between two fetches (unknown kid floods); default 10s." },
          default_ttl: { ...durationSchema, description: "JWKS lifetime without Cache-Control max-age; default 10m." },
          max_ttl: { ...durationSchema, description: "Longest JWKS lifetime; default 24h." },
        },
      },
      on_unavailable: { enum: [401, 503], description: "Answer when the JWKS cannot be fetched; default 503." },
      realm: { type: "string", pattern: '^[^"\\\\]*$', description: "Realm of the challenge; default turnpike." },
    },
  },
  validate(config) {
    const problems: { path: (string | number)[]; message: string }[] = [];
    const sources = (config.secret !== undefined ? 1 : 0) + (config.keys?.length ? 1 : 0) + (config.jwks_url ? 1 : 0) + (config.discovery ? 1 : 0);
    if (sources === 0) problems.push({ path: [], message: "set a key source: secret, keys, jwks_url, or discovery with issuer" });
    if (config.jwks_url && config.discovery) problems.push({ path: ["discovery"], message: "use either jwks_url or discovery" });
    if (config.discovery && typeof config.issuer !== "string") problems.push({ path: ["issuer"], message: "discovery needs one issuer URL" });
    if (config.algorithms?.some((alg) => alg.startsWith("HS")) && config.secret === undefined) {
      problems.push({ path: ["algorithms"], message: "HS* algorithms need `secret`" });
    }
    if (config.secret !== undefined && config.algorithms && !config.algorithms.some((alg) => alg.startsWith("HS"))) {
      problems.push({ path: ["secret"], message: "a secret is only used by HS* algorithms; add one to algorithms" });
    }
    return problems;
  },
  create(config, context) {
    const realm = config.realm ?? "turnpike";
    const challenges = bearerChallenges(realm);
    const staticKeys: JWK[] = loadStaticKeys(config.keys ?? [], context.baseDir);
    const remote = createRemote(config, new ProviderWatch(context.log, context.path));
    const algorithms = config.algorithms ?? [...new Set([...algorithmsFor(staticKeys, config.secret !== undefined), ...(remote ? ASYMMETRIC_ALGORITHMS : [])])];
    const resolveKey = keyResolver(config.secret, staticKeys, remote);
    const options: JWTVerifyOptions = {
      algorithms,
      issuer: config.issuer,
      audience: config.audience,
      requiredClaims: config.required_claims,
      clockTolerance: Math.round(parseDuration(config.clock_skew ?? "30s") / 1000),
    };
    const maxSize = config.max_token_size ?? 8192;
    const source = { query: config.query ?? null };
    const forward = config.forward_token ?? true;
    const toConsumer = compileTokenConsumer(config.consumer, context.consumers, "jwt");
    const cache = new ExpiringCache<Consumer>(config.cache_size ?? 10_000);
    const cacheMaxTtl = parseDuration(config.cache_max_ttl ?? "5m");
    const unavailable = config.on_unavailable ?? 503;

    const refuse = (exchange: Exchange) => unauthorized(exchange, "invalid", challenges.invalid);

    const policy: Policy = {
      type: "jwt",
      authentication: true,
      secrets: { queryParams: source.query ? [source.query] : [] },
      async onRequest(exchange) {
        const bearer = bearerOrRefusal(exchange, source, maxSize, challenges);
        if (bearer instanceof Response) return bearer;
        const { token, fromQuery } = bearer;
        const key = sha256Hex(token);
        let consumer = cache.get(key);
        if (consumer === undefined) {
          let payload: Record<string, unknown>;
          try {
            payload = await verify(token, resolveKey, options);
          } catch (error) {
            if (error instanceof ProviderUnavailable) return unavailable === 503 ? authUnavailable(exchange) : refuse(exchange);
            return refuse(exchange);
          }
          const mapped = toConsumer(payload);
          if (mapped === null) return refuse(exchange);
          consumer = mapped;
          const now = Date.now();
          const exp = typeof payload.exp === "number" ? payload.exp * 1000 : Infinity;
          cache.set(key, consumer, Math.min(exp, now + cacheMaxTtl));
        }
        if (!identify(exchange, consumer)) return refuse(exchange);
        if (!forward) removeBearer(exchange, source, fromQuery);
        return undefined;
      },
    };
    return policy;
  },
};

function createRemote(config: JwtConfig, watch: ProviderWatch): RemoteKeySet | null {
  if (!config.jwks_url && !config.discovery) return null;
  const timeoutMs = parseDuration(config.jwks?.timeout ?? "3s");
  const options = {
    timeoutMs,
    minRefreshMs: parseDuration(config.jwks?.min_refresh_interval ?? "10s"),
    defaultTtlMs: parseDuration(config.jwks?.default_ttl ?? "10m"),
    maxTtlMs: parseDuration(config.jwks?.max_ttl ?? "24h"),
    watch,
  };
  if (config.jwks_url) {
    const url = config.jwks_url;
    return new RemoteKeySet(async () => url, options);
  }
  const discovery = new OidcDiscovery(config.issuer as string, timeoutMs, options.minRefreshMs, undefined, undefined, watch);
  return new RemoteKeySet(() => discovery.endpoint("jwks_uri"), options);
}

/**
 * The key for a token: the secret for HS* only (never a public key as an HMAC secret),
 * else the static keys (by kid or type), then the remote set.
 */
function keyResolver(secret: string | undefined, staticKeys: JWK[], remote: RemoteKeySet | null): JWTVerifyGetKey {
  const secretBytes = secret !== undefined ? new TextEncoder().encode(secret) : null;
  const local = staticKeys.length > 0 ? createLocalJWKSet({ keys: staticKeys }) : null;
  return async (header, token) => {
    if (typeof header.alg === "string" && header.alg.startsWith("HS")) {
      if (secretBytes === null) throw new joseErrors.JWKSNoMatchingKey();
      return secretBytes;
    }
    if (!local) {
      if (!remote) throw new joseErrors.JWKSNoMatchingKey();
      return remote.getKey(header, token);
    }
    if (!remote) return local(header, token);
    try {
      return await local(header, token);
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) return remote!.getKey(header, token);
      throw error;
    }
  };
}

/** jwtVerify, trying each candidate key when several match a token without kid. */
async function verify(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<Record<string, unknown>> {
  try {
    return (await jwtVerify(token, getKey, options)).payload as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof joseErrors.JWKSMultipleMatchingKeys)) throw error;
    for await (const key of error as unknown as AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(token, key, options)).payload as Record<string, unknown>;
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw error;
  }
}

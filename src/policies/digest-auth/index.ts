/**
 * `digest-auth`: HTTP Digest authentication (RFC 7616) with SHA-256 and MD5, qop=auth,
 * nonces that expire (then `stale=true`), and nonce counts remembered in the shared
 * store so a replayed request is refused on any worker.
 *
 *     - type: digest-auth
 *       config: { realm: api, algorithms: [SHA-256, MD5], nonce_lifetime: 5m }
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { identify } from "../../auth/identity.ts";
import { authUnavailable, quoted, unauthorized } from "../../auth/responses.ts";
import { consumerFromRecord, type Consumer } from "../../core/consumer.ts";
import type { Exchange } from "../../core/exchange.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";
import { DIGEST_ALGORITHMS, digestHex, NonceKeeper, parseDigestParams, type DigestAlgorithm } from "./digest.ts";

interface DigestAuthConfig {
  realm?: string;
  algorithms?: DigestAlgorithm[];
  nonce_lifetime?: string | number;
  forward_authorization?: boolean;
}

interface DigestUser {
  consumer: Consumer;
  /** HA1 per algorithm (hex of H(username:realm:password)). */
  ha1: Partial<Record<DigestAlgorithm, string>>;
}

/** Longest Authorization header looked at. */
const MAX_HEADER = 4096;

export const digestAuthPolicy: PolicyFactory<DigestAuthConfig> = {
  type: "digest-auth",
  description: "Identify the consumer by HTTP Digest authentication (RFC 7616: SHA-256, MD5, qop=auth, anti-replay).",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      realm: { type: "string", minLength: 1, pattern: '^[^"\\\\]*$', description: "Realm; default turnpike (ha1 credentials must be made for it)." },
      algorithms: { type: "array", minItems: 1, uniqueItems: true, items: { enum: Object.keys(DIGEST_ALGORITHMS) }, description: "Offered, in order of preference; default [SHA-256, MD5]." },
      nonce_lifetime: { ...durationSchema, description: "How long a nonce is accepted; default 5m." },
      forward_authorization: { type: "boolean", description: "Send the Authorization header to the upstream; default false." },
    },
  },
  create(config, context) {
    const realm = config.realm ?? "turnpike";
    const algorithms = config.algorithms ?? ["SHA-256", "MD5"];
    const lifetimeMs = parseDuration(config.nonce_lifetime ?? "5m");
    const forward = config.forward_authorization ?? false;
    const users = new Map<string, DigestUser>();
    const keyMaterial = createHash("sha256").update("turnpike digest nonces\0").update(realm);
    for (const { consumer, credential } of context.consumers.credentials("digest")) {
      const ha1: DigestUser["ha1"] = {};
      if (typeof credential.password === "string") {
        for (const algorithm of algorithms) ha1[algorithm] = digestHex(algorithm, `${credential.username}:${realm}:${credential.password}`);
      } else {
        // HA1 values only work for the realm they were made for; other realms skip them.
        if (credential.realm !== realm) continue;
        if (typeof credential.ha1_sha256 === "string") ha1["SHA-256"] = credential.ha1_sha256;
        if (typeof credential.ha1_md5 === "string") ha1.MD5 = credential.ha1_md5;
      }
      users.set(credential.username as string, { consumer: consumerFromRecord(consumer, "digest-auth"), ha1 });
      keyMaterial.update(JSON.stringify(credential));
    }
    // Every worker derives the same nonce key from the config, and nobody without the
    // credentials can: any worker checks a nonce another issued.
    const nonces = new NonceKeeper(keyMaterial.digest(), lifetimeMs);
    const opaque = createHash("sha256").update(realm).digest("hex").slice(0, 16);

    const challenges = (stale: boolean): string[] =>
      algorithms.map(
        (algorithm) =>
          `Digest realm=${quoted(realm)}, qop="auth", algorithm=${algorithm}, nonce="${nonces.issue()}", opaque="${opaque}", charset=UTF-8${stale ? ", stale=true" : ""}`,
      );
    const refuse = (exchange: Exchange, failure: "missing" | "invalid", stale = false) => unauthorized(exchange, failure, challenges(stale));

    const policy: Policy = {
      type: "digest-auth",
      authentication: true,
      async onRequest(exchange) {
        const header = exchange.request.headers.get("authorization");
        if (header === null) return refuse(exchange, "missing");
        if (header.length > MAX_HEADER) return refuse(exchange, "invalid");
        const params = parseDigestParams(header);
        if (params === null) return refuse(exchange, "invalid");
        const username = params.get("username");
        const nonce = params.get("nonce");
        const uri = params.get("uri");
        const response = params.get("response");
        const cnonce = params.get("cnonce");
        const nc = params.get("nc");
        const algorithm = (params.get("algorithm") ?? "MD5") as DigestAlgorithm;
        if (!username || !nonce || !uri || !response || !cnonce || !nc || params.get("qop") !== "auth") return refuse(exchange, "invalid");
        if (params.get("realm") !== realm || !algorithms.includes(algorithm) || !/^[0-9a-fA-F]{8}$/.test(nc)) return refuse(exchange, "invalid");
        if (params.has("opaque") && params.get("opaque") !== opaque) return refuse(exchange, "invalid");
        if (uri !== requestTarget(exchange.request)) return refuse(exchange, "invalid");
        const nonceState = nonces.check(nonce);
        if (nonceState.result === "invalid") return refuse(exchange, "invalid");
        const user = users.get(username);
        const ha1 = user?.ha1[algorithm];
        // Unknown users and wrong passwords take the same path and the same answer.
        const expected = digestHex(algorithm, `${ha1 ?? "0"}:${nonce}:${nc}:${cnonce}:auth:${digestHex(algorithm, `${exchange.request.method}:${uri}`)}`);
        if (!user || ha1 === undefined || response.length !== expected.length || !timingSafeEqual(Buffer.from(response.toLowerCase()), Buffer.from(expected))) {
          return refuse(exchange, "invalid");
        }
        // A genuine answer to an expired nonce: the client retries with a fresh one (stale=true).
        if (nonceState.result === "stale") return refuse(exchange, "invalid", true);
        let fresh: boolean;
        try {
          fresh = await context.store().setIfAbsent(`digest/${nonce}/${nc.toLowerCase()}/${cnonce}`, "1", (nonceState as { remainingMs: number }).remainingMs + 1_000);
        } catch {
          return authUnavailable(exchange);
        }
        if (!fresh) return refuse(exchange, "invalid");
        if (!identify(exchange, user.consumer)) return refuse(exchange, "invalid");
        if (!forward) exchange.upstreamHeaders.delete("authorization");
        return undefined;
      },
    };
    return policy;
  },
};

/** The request target as the client sent it (path and query). */
function requestTarget(request: Request): string {
  const url = request.url;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return start < 0 ? "/" : url.slice(start);
}

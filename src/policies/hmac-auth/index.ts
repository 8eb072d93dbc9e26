/**
 * `hmac-auth`: identifies the consumer by an HMAC signature over the request (method,
 * target, selected headers and a digest of the body), with anti-replay: the signature's
 * `created` time must be within `clock_skew` of the gateway's clock, and each nonce is
 * accepted once, remembered in the shared store until it could no longer be fresh, so
 * a replay is refused by any worker that shares the store. See `signature.ts` for the
 * header syntax and the signing string.
 *
 * Keys are consumer credentials: `{ type: hmac, key_id: billing-1, secret: ${HMAC_SECRET} }`.
 *
 *     - type: hmac-auth
 *       config:
 *         required_headers: [host]
 *         clock_skew: 300s
 *         max_body_size: 1MiB
 */
import { timingSafeEqual } from "node:crypto";
import { identify } from "../../auth/identity.ts";
import { quoted, unauthorized } from "../../auth/responses.ts";
import { consumerFromRecord, type Consumer } from "../../core/consumer.ts";
import type { Exchange } from "../../core/exchange.ts";
import { recordDecision } from "../../core/pipeline.ts";
import type { PolicyFactory } from "../../core/policy.ts";
import { problem } from "../../core/problem.ts";
import { durationSchema, parseDuration, parseSize, sizeSchema } from "../../core/units.ts";
import type { Store } from "../../store/types.ts";
import { ALGORITHMS, computeSignature, parseSignatureHeader, signingString } from "./signature.ts";

/** The `config` of an `hmac-auth` policy. */
export interface HmacAuthConfig {
  algorithms?: string[];
  required_headers?: string[];
  clock_skew?: number | string;
  max_body_size?: number | string;
  realm?: string;
}

const DEFAULT_SKEW_MS = 300_000;
const DEFAULT_MAX_BODY = 1024 * 1024;

export const hmacAuthPolicy: PolicyFactory<HmacAuthConfig> = {
  type: "hmac-auth",
  description: "Identify the consumer by an HMAC request signature (method, path, headers, body digest) with anti-replay.",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      algorithms: { type: "array", minItems: 1, uniqueItems: true, items: { enum: Object.keys(ALGORITHMS) }, description: "Accepted algorithms; default both." },
      required_headers: {
        type: "array",
        items: { type: "string", pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" },
        description: "Headers every signature must cover (e.g. host, content-type).",
      },
      clock_skew: { ...durationSchema, description: "Largest difference between `created` and the gateway's clock; default 300s." },
      max_body_size: { ...sizeSchema, description: "Largest body that is read to check its digest (413 above); default 1MiB." },
      realm: { type: "string", description: "Realm in the WWW-Authenticate challenge; default turnpike." },
    },
  },
  validate(config) {
    const skew = config.clock_skew === undefined ? DEFAULT_SKEW_MS : parseDuration(config.clock_skew);
    return skew < 1000 || skew > 3_600_000 ? [{ path: ["clock_skew"], message: "must be between 1s and 1h" }] : [];
  },
  create(config, context) {
    const algorithms = new Set(config.algorithms ?? Object.keys(ALGORITHMS));
    const required = (config.required_headers ?? []).map((name) => name.toLowerCase());
    const skewMs = config.clock_skew === undefined ? DEFAULT_SKEW_MS : parseDuration(config.clock_skew);
    const maxBody = config.max_body_size === undefined ? DEFAULT_MAX_BODY : parseSize(config.max_body_size);
    // A nonce must be remembered for as long as its `created` time can pass the window check.
    const nonceTtlMs = 2 * skewMs + 1000;
    // The node's (or cluster's) store, created on first use in the serving process.
    let store: Store | null = null;
    const challenges = [
      `HMAC realm=${quoted(config.realm ?? "turnpike")}, algorithms=${quoted([...algorithms].join(" "))}` +
        (required.length > 0 ? `, headers=${quoted(required.join(" "))}` : ""),
    ];
    const keys = new Map<string, { secret: string; consumer: Consumer }>();
    for (const { consumer, credential } of context.consumers.credentials("hmac")) {
      keys.set(credential.key_id as string, { secret: credential.secret as string, consumer: consumerFromRecord(consumer, "hmac-auth") });
    }

    const refuse = (exchange: Exchange, decision: string, detail?: string) => {
      recordDecision(exchange, "hmac-auth", decision);
      if (detail === undefined) return unauthorized(exchange, "invalid", challenges);
      const headers = new Headers();
      for (const challenge of challenges) headers.append("www-authenticate", challenge);
      return problem({ status: 401, kind: "unauthorized", detail, requestId: exchange.requestId, headers });
    };

    return {
      type: "hmac-auth",
      authentication: true,
      async onRequest(exchange) {
        const header = exchange.request.headers.get("authorization");
        const parsed = header === null ? null : parseSignatureHeader(header);
        if (parsed === null) return refuse(exchange, "missing", "This resource needs a signed request (Authorization: HMAC-SHA256 ...).");
        if (typeof parsed === "string") return refuse(exchange, "malformed", `The Authorization header is not a valid signature: ${parsed}.`);
        if (!algorithms.has(parsed.algorithm)) return refuse(exchange, "malformed", `Algorithm ${parsed.algorithm} is not accepted here; use ${[...algorithms].join(" or ")}.`);
        const missing = required.filter((name) => !parsed.headers.includes(name));
        if (missing.length > 0) return refuse(exchange, "malformed", `The signature must cover the header(s): ${missing.join(", ")}.`);
        const skew = Date.now() - parsed.created * 1000;
        if (Math.abs(skew) > skewMs) {
          return refuse(exchange, "stale", `The signature's created time is ${skew > 0 ? "older" : "later"} than the allowed ${skewMs / 1000} s from the gateway's clock.`);
        }
        const signedHeaders: [string, string][] = [];
        for (const name of parsed.headers) {
          const value = exchange.request.headers.get(name);
          if (value === null) return refuse(exchange, "malformed", `The signed header ${name} is not in the request.`);
          signedHeaders.push([name, value]);
        }
        const body = await readBody(exchange, maxBody);
        if (body instanceof Response) return body;
        const key = keys.get(parsed.keyId);
        const url = exchange.request.url;
        const text = signingString({
          algorithm: parsed.algorithm,
          method: exchange.request.method,
          target: url.slice(url.indexOf("/", url.indexOf("//") + 2)),
          created: parsed.created,
          nonce: parsed.nonce,
          body,
          headers: signedHeaders,
        });
        // An unknown key id costs an HMAC too, so timing does not tell which ids exist.
        const expected = computeSignature(parsed.algorithm, key?.secret ?? "no such key: constant work", text);
        const valid = key !== undefined && expected.length === parsed.signature.length && timingSafeEqual(expected, parsed.signature);
        if (!valid) return refuse(exchange, "invalid");
        // The nonce is spent only by a valid signature, so nobody can burn another's nonces.
        let fresh: boolean;
        try {
          store ??= context.store();
          fresh = await store.setIfAbsent(`hmac-nonce:${parsed.keyId}:${parsed.nonce}`, "1", nonceTtlMs);
        } catch {
          recordDecision(exchange, "hmac-auth", "store-unavailable");
          return problem({ status: 503, kind: "auth-unavailable", detail: "The signature cannot be checked right now.", requestId: exchange.requestId, headers: { "retry-after": "5" } });
        }
        if (!fresh) return refuse(exchange, "replay", "This nonce was already used; sign every request with a new nonce.");
        if (!identify(exchange, key.consumer)) return refuse(exchange, "invalid");
        exchange.upstreamHeaders.delete("authorization");
        return undefined;
      },
    };
  },
};

/**
 * Reads the whole body (up to `max` bytes, else 413) and puts it back on the exchange so
 * the upstream still gets it.
 */
async function readBody(exchange: Exchange, max: number): Promise<Uint8Array | Response> {
  const stream = exchange.body;
  if (stream === null) return new Uint8Array();
  const declared = exchange.request.headers.get("content-length");
  const tooLarge = () =>
    problem({ status: 413, kind: "body-too-large", detail: `A signed request body may be at most ${max} bytes.`, requestId: exchange.requestId });
  if (declared !== null && Number(declared) > max) return tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) return tooLarge();
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks, size);
  exchange.body = size === 0 ? null : new Blob([body]).stream();
  return body;
}

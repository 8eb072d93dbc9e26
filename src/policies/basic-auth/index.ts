/**
 * `basic-auth`: identifies the consumer by a user name and password (RFC 7617).
 * Passwords are configured on consumers as Bun.password hashes (argon2id or bcrypt).
 * A verified credential is remembered for `cache_ttl`, keyed by a SHA-256 of the
 * header, so a hot credential costs a hash, not an argon2 run; concurrent checks of
 * one credential share a single verification, and at most `max_concurrent_checks`
 * run at once per worker (argon2id uses 64 MiB each).
 *
 *     - type: basic-auth
 *       config: { realm: admin }
 */
import { ExpiringCache } from "../../auth/cache.ts";
import { credentialsFor, decodeBasic } from "../../auth/credentials-header.ts";
import { identify } from "../../auth/identity.ts";
import { quoted, unauthorized } from "../../auth/responses.ts";
import { sha256Hex } from "../../auth/secrets.ts";
import { consumerFromRecord, type Consumer } from "../../core/consumer.ts";
import type { Policy, PolicyFactory } from "../../core/policy.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";

interface BasicAuthConfig {
  realm?: string;
  cache_ttl?: string | number;
  cache_size?: number;
  max_concurrent_checks?: number;
  forward_authorization?: boolean;
}

/** Longest Authorization header looked at; longer ones are refused unread. */
const MAX_HEADER = 4096;

export const basicAuthPolicy: PolicyFactory<BasicAuthConfig> = {
  type: "basic-auth",
  description: "Identify the consumer by user name and password (Basic auth; argon2id or bcrypt hashes).",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      realm: { type: "string", pattern: '^[^"\\\\]*$', description: "Realm of the challenge; default turnpike." },
      cache_ttl: { ...durationSchema, description: "How long a verified credential is remembered; default 30s, 0 to verify every time." },
      cache_size: { type: "integer", minimum: 0, description: "Most credentials remembered per worker; default 10000." },
      max_concurrent_checks: { type: "integer", minimum: 1, maximum: 64, description: "Password verifications running at once per worker; default 4." },
      forward_authorization: { type: "boolean", description: "Send the Authorization header to the upstream; default false." },
    },
  },
  create(config, context) {
    const realm = config.realm ?? "turnpike";
    const challenges = [`Basic realm=${quoted(realm)}, charset="UTF-8"`];
    const ttl = parseDuration(config.cache_ttl ?? "30s");
    const cache = new ExpiringCache<Consumer>(ttl > 0 ? (config.cache_size ?? 10_000) : 0);
    const limit = new ConcurrencyLimit(config.max_concurrent_checks ?? 4);
    const forward = config.forward_authorization ?? false;
    const users = new Map<string, { hash: string; consumer: Consumer }>();
    for (const { consumer, credential } of context.consumers.credentials("basic")) {
      users.set(credential.username as string, { hash: credential.password_hash as string, consumer: consumerFromRecord(consumer, "basic-auth") });
    }
    const pending = new Map<string, Promise<Consumer | null>>();

    async function verify(username: string, password: string): Promise<Consumer | null> {
      const user = users.get(username);
      await limit.acquire();
      try {
        // An unknown user costs a verification too, so timing does not tell which users exist.
        const ok = await Bun.password.verify(password, user?.hash ?? (await decoyHash())).catch(() => false);
        return ok && user ? user.consumer : null;
      } finally {
        limit.release();
      }
    }

    const policy: Policy = {
      type: "basic-auth",
      authentication: true,
      async onRequest(exchange) {
        const header = exchange.request.headers.get("authorization");
        const encoded = credentialsFor(header, "Basic");
        if (encoded === null) return unauthorized(exchange, header === null ? "missing" : "invalid", challenges);
        if (header!.length > MAX_HEADER) return unauthorized(exchange, "invalid", challenges);
        const key = sha256Hex(encoded);
        let consumer = cache.get(key) ?? null;
        if (consumer === null) {
          const decoded = decodeBasic(encoded);
          if (decoded === null || users.size === 0) return unauthorized(exchange, "invalid", challenges);
          let check = pending.get(key);
          if (!check) {
            check = verify(decoded.username, decoded.password);
            pending.set(key, check);
            check.finally(() => pending.delete(key));
          }
          consumer = await check;
          if (consumer === null) return unauthorized(exchange, "invalid", challenges);
          if (ttl > 0) cache.set(key, consumer, Date.now() + ttl);
        }
        if (!identify(exchange, consumer)) return unauthorized(exchange, "invalid", challenges);
        if (!forward) exchange.upstreamHeaders.delete("authorization");
        return undefined;
      },
    };
    return policy;
  },
};

let decoy: Promise<string> | null = null;

/** An argon2id hash of a random password, made once per process on first need (not at load). */
function decoyHash(): Promise<string> {
  decoy ??= Bun.password.hash(crypto.randomUUID(), { algorithm: "argon2id" });
  return decoy;
}

/** A counting semaphore: at most `limit` holders; others wait in order. */
class ConcurrencyLimit {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  acquire(): Promise<void> {
    if (this.#active < this.limit) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }
}

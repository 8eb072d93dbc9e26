/**
 * A JWKS fetched from a URL: kept for the provider's Cache-Control max-age (clamped
 * between a floor and a ceiling), fetched again when a token names a key id it does not
 * hold, but never more often than `minRefreshMs` so a flood of unknown kids cannot
 * hammer the provider. Concurrent requests share one fetch. When a refresh fails,
 * the keys held stay in use; with no keys at all, verification fails as unavailable.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWSHeaderParameters } from "jose";
import type { ProviderWatch } from "./provider-watch.ts";
import { fetchJson, ProviderUnavailable } from "./remote.ts";

/** Timings of a remote key set, in milliseconds. */
export interface RemoteKeySetOptions {
  timeoutMs: number;
  /** Shortest time between two fetches (floor against kid floods and failing providers). */
  minRefreshMs: number;
  /** Lifetime when the provider sends no max-age. */
  defaultTtlMs: number;
  /** Longest lifetime, whatever the provider says. */
  maxTtlMs: number;
  /** Logs failures and recoveries of the JWKS URL. */
  watch?: ProviderWatch;
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/** A JWKS behind a URL (the URL may be found later, e.g. by OIDC discovery). */
export class RemoteKeySet {
  #resolver: KeyResolver | null = null;
  #kids = new Set<string>();
  #expiresAt = 0;
  #lastFetchAt = -Infinity;
  #inflight: Promise<void> | null = null;
  #lastError: ProviderUnavailable | null = null;

  constructor(
    readonly url: () => Promise<string>,
    readonly options: RemoteKeySetOptions,
    readonly now: () => number = Date.now,
  ) {}

  /** The resolver jose calls with a token's protected header. */
  readonly getKey = async (header: JWSHeaderParameters, token: unknown) => {
    const now = this.now();
    if (this.#resolver === null || now >= this.#expiresAt || (header.kid !== undefined && !this.#kids.has(header.kid))) {
      await this.#refresh(now);
    }
    if (this.#resolver === null) throw this.#lastError ?? new ProviderUnavailable("no JWKS");
    return this.#resolver(header, token as never);
  };

  async #refresh(now: number): Promise<void> {
    if (this.#inflight) return this.#inflight;
    if (now - this.#lastFetchAt < this.options.minRefreshMs) return;
    this.#lastFetchAt = now;
    this.#inflight = this.#fetch().finally(() => {
      this.#inflight = null;
    });
    return this.#inflight;
  }

  async #fetch(): Promise<void> {
    let url: string | null = null;
    try {
      // A URL that cannot be found (discovery) is reported by whoever looks it up.
      url = await this.url();
      const { body, maxAgeMs } = await fetchJson(url, this.options.timeoutMs);
      const keys = (body as { keys?: unknown }).keys;
      if (!Array.isArray(keys)) throw new ProviderUnavailable(`${url} holds no "keys" array`);
      // Only public keys are usable for verification; symmetric keys from a URL are ignored.
      const usable = keys.filter((key) => key && typeof key === "object" && (key as { kty?: unknown }).kty !== "oct");
      this.#resolver = createLocalJWKSet({ keys: usable } as JSONWebKeySet);
      this.#kids = new Set(usable.map((key) => (key as { kid?: string }).kid).filter((kid): kid is string => typeof kid === "string"));
      const ttl = Math.min(Math.max(maxAgeMs ?? this.options.defaultTtlMs, this.options.minRefreshMs), this.options.maxTtlMs);
      this.#expiresAt = this.now() + ttl;
      this.#lastError = null;
      this.options.watch?.succeeded(url);
    } catch (error) {
      this.#lastError = error instanceof ProviderUnavailable ? error : new ProviderUnavailable((error as Error).message);
      if (url !== null) this.options.watch?.failed(url, this.#lastError);
      // Keys held before stay in use until a refresh works; retry after the floor.
      if (this.#resolver !== null) this.#expiresAt = this.now() + this.options.minRefreshMs;
    }
  }
}

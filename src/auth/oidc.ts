/**
 * OpenID Connect discovery: reads `<issuer>/.well-known/openid-configuration` for the
 * JWKS and introspection endpoints. The document is fetched on first use, kept for an
 * hour (or its Cache-Control max-age), and its `issuer` must equal the configured one.
 */
import type { ProviderWatch } from "./provider-watch.ts";
import { fetchJson, ProviderUnavailable } from "./remote.ts";

/** What Turnpike reads from a discovery document. */
export interface DiscoveryDocument {
  issuer: string;
  jwks_uri?: string;
  introspection_endpoint?: string;
}

/** A discovery document of one issuer, fetched lazily and refreshed. */
export class OidcDiscovery {
  #document: DiscoveryDocument | null = null;
  #expiresAt = 0;
  #lastAttemptAt = -Infinity;
  #inflight: Promise<void> | null = null;
  #lastError: ProviderUnavailable | null = null;

  constructor(
    readonly issuer: string,
    readonly timeoutMs: number,
    readonly retryAfterMs = 10_000,
    readonly ttlMs = 3_600_000,
    readonly now: () => number = Date.now,
    /** Logs failures and recoveries of the discovery URL. */
    readonly watch?: ProviderWatch,
  ) {}

  /** The URL of the discovery document. */
  get url(): string {
    return `${this.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  }

  /** The current document; throws ProviderUnavailable when it cannot be had. */
  async document(): Promise<DiscoveryDocument> {
    const now = this.now();
    if ((this.#document === null || now >= this.#expiresAt) && !this.#inflight && now - this.#lastAttemptAt >= (this.#document ? 0 : this.retryAfterMs)) {
      this.#lastAttemptAt = now;
      this.#inflight = this.#fetch().finally(() => {
        this.#inflight = null;
      });
    }
    if (this.#inflight && this.#document === null) await this.#inflight;
    if (this.#document === null) throw this.#lastError ?? new ProviderUnavailable(`no discovery document from ${this.url}`);
    return this.#document;
  }

  /** An endpoint named by the document; throws ProviderUnavailable when it is missing. */
  async endpoint(name: "jwks_uri" | "introspection_endpoint"): Promise<string> {
    const document = await this.document();
    const value = document[name];
    if (typeof value !== "string" || !/^https?:\/\//.test(value)) throw new ProviderUnavailable(`the discovery document of ${this.issuer} has no ${name}`);
    return value;
  }

  async #fetch(): Promise<void> {
    try {
      const { body, maxAgeMs } = await fetchJson(this.url, this.timeoutMs);
      const document = body as DiscoveryDocument;
      if (!document || typeof document !== "object" || typeof document.issuer !== "string") throw new ProviderUnavailable(`${this.url} is not a discovery document`);
      if (document.issuer.replace(/\/$/, "") !== this.issuer.replace(/\/$/, "")) {
        throw new ProviderUnavailable(`${this.url} names issuer ${document.issuer}, not ${this.issuer}`);
      }
      this.#document = document;
      this.#expiresAt = this.now() + Math.max(maxAgeMs ?? this.ttlMs, this.retryAfterMs);
      this.#lastError = null;
      this.watch?.succeeded(this.url);
    } catch (error) {
      this.#lastError = error instanceof ProviderUnavailable ? error : new ProviderUnavailable((error as Error).message);
      this.watch?.failed(this.url, this.#lastError);
      // A document held before stays in use; try again after retryAfterMs.
      if (this.#document !== null) this.#expiresAt = this.now() + this.retryAfterMs;
    }
  }
}

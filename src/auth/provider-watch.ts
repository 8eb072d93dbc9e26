/**
 * Operator-facing log lines about identity providers (JWKS, OIDC discovery, token
 * introspection): a warning when an endpoint cannot be used, at most once per interval
 * per endpoint whatever the request rate, and one info line when it answers again.
 * Lines name the policy path and the endpoint URL (without user info or query string),
 * never a token, key or secret.
 */
import type { Logger } from "../observability/logger.ts";

/** Shortest time between two warnings about one endpoint. */
export const PROVIDER_WARN_INTERVAL_MS = 60_000;

interface EndpointState {
  lastWarnAt: number;
  /** A warning was logged since the endpoint last worked. */
  warned: boolean;
}

/** Tracks the endpoints one policy calls and logs their failures and recoveries. */
export class ProviderWatch {
  readonly #endpoints = new Map<string, EndpointState>();

  constructor(
    readonly log: Logger,
    readonly policyPath: string,
    readonly intervalMs = PROVIDER_WARN_INTERVAL_MS,
    readonly now: () => number = Date.now,
  ) {}

  /** `url` could not be used; warns unless a warning about it was logged within the interval. */
  failed(url: string, error: Error): void {
    const state = this.#state(url);
    const now = this.now();
    if (now - state.lastWarnAt < this.intervalMs) return;
    state.lastWarnAt = now;
    state.warned = true;
    const shown = displayUrl(url);
    this.log.warn("identity provider unavailable", { policy: this.policyPath, url: shown, error: error.message.split(url).join(shown) });
  }

  /** `url` answered usefully; logs once that it works again after a warning. */
  succeeded(url: string): void {
    const state = this.#endpoints.get(url);
    if (!state?.warned) return;
    state.warned = false;
    this.log.info("identity provider available again", { policy: this.policyPath, url: displayUrl(url) });
  }

  #state(url: string): EndpointState {
    let state = this.#endpoints.get(url);
    if (!state) {
      state = { lastWarnAt: -Infinity, warned: false };
      this.#endpoints.set(url, state);
    }
    return state;
  }
}

/** The URL without user info and query string, which may hold credentials. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

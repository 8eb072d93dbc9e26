/**
 * Compiled upstreams: where a route's requests go.
 */
import type { MockResponse } from "../core/mock.ts";
import type { Timeouts } from "../router/types.ts";
import type { ConcurrencyLimiter } from "./concurrency.ts";
import type { HttpUpstream } from "./upstream.ts";

/** One backend address, parsed once at load. */
export interface Target {
  /** `http://127.0.0.1:3000` without a trailing slash. */
  origin: string;
  /** Path prefix of the target URL (`/base` for `http://h/base`), "" for none. */
  basePath: string;
  /** `host[:port]` to send when the route uses the upstream's Host. */
  host: string;
  weight: number;
  /** For a target found by DNS discovery over https: the name to verify its certificate against. */
  serverName?: string | null;
}

/** An upstream answered by a mock. */
export interface MockUpstream {
  kind: "mock";
  name: string;
  mock: MockResponse;
  timeouts: Partial<Timeouts>;
  concurrency: ConcurrencyLimiter | null;
}

/** An upstream: either forwarded to targets (with balancing, health and retries) or answered by a mock. */
export type CompiledUpstream = HttpUpstream | MockUpstream;

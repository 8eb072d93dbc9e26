/**
 * The compiled route: everything a request on this route needs, resolved at load.
 */
import type { HeaderOps } from "../core/headers.ts";
import type { Step } from "../core/pipeline.ts";
import type { ConcurrencyLimiter } from "../upstream/concurrency.ts";
import type { CompiledUpstream } from "../upstream/types.ts";
import type { Split } from "./split.ts";

/** Upstream timeouts in milliseconds; 0 means none. */
export interface Timeouts {
  connect: number;
  responseHeaders: number;
  idle: number;
  total: number;
}

/** Request limits in bytes; 0 means none. */
export interface Limits {
  maxBodySize: number;
  maxHeaderSize: number;
  maxUrlLength: number;
}

/** How to build the upstream path from the request path and route parameters. */
export type Rewrite = (path: string, params: Record<string, string>) => string;

/** A route, compiled. */
export interface CompiledRoute {
  name: string;
  /** Position in the config file; ties are broken by file order. */
  index: number;
  priority: number;
  upstream: CompiledUpstream;
  rewrite: Rewrite | null;
  /** `preserve` keeps the client's Host, `upstream` uses the target's, other values are sent as is. */
  hostHeader: "preserve" | "upstream" | { set: string };
  requestHeaders: HeaderOps | null;
  responseHeaders: HeaderOps | null;
  timeouts: Timeouts;
  limits: Limits;
  policies: Step[];
  /**
   * Concurrency limits a request takes a slot of before the upstream call, in order:
   * the route's, then its upstream's. Empty when none is configured.
   */
  limiters: ConcurrencyLimiter[];
  /**
   * With `split`: picks the variant of this route (same settings, another upstream)
   * that serves a request; null on a plain route and on the variants themselves.
   */
  split: Split | null;
}

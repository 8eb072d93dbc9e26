/**
 * The runtime graph: one config generation compiled for the hot path. Immutable once
 * built; a reload builds a new one and swaps it in.
 */
import type { ConsumerHeaders } from "../auth/consumer-headers.ts";
import type { ConsumerDirectory } from "../core/consumer.ts";
import type { Step } from "../core/pipeline.ts";
import type { ObservabilityConfig } from "../observability/config.ts";
import type { Router } from "../router/router.ts";
import type { Limits } from "../router/types.ts";
import type { StoreSettings } from "../store/index.ts";
import type { ConcurrencyLimiter } from "../upstream/concurrency.ts";
import type { CompiledUpstream } from "../upstream/types.ts";

/** A listener with its TLS material read from disk. */
export interface CompiledListener {
  name: string;
  address: string;
  port: number;
  scheme: "http" | "https";
  /** SNI entries; the first is the default certificate. */
  tls: { cert: string; key: string; serverName?: string }[] | null;
  /**
   * Client certificates (mTLS): PEM texts of the CAs that sign them, and whether one is
   * required in the handshake or only requested. Such a listener is served through the
   * TLS bridge (src/server/tls-bridge.ts). Null: no client certificates.
   */
  clientCertificates: { ca: string[]; mode: "request" | "require" } | null;
}

/** Everything a worker needs to serve one config generation. */
export interface RuntimeGraph {
  listeners: CompiledListener[];
  admin: { enabled: boolean; address: string; port: number };
  router: Router;
  upstreams: Map<string, CompiledUpstream>;
  preFlow: Step[];
  postFlow: Step[];
  /** Tests whether a peer is a trusted proxy (whose X-Forwarded-For is believed); null: none is. */
  trustedProxies: ((address: string) => boolean) | null;
  /** Server-wide request limits, before any route is known. */
  limits: Limits;
  /** Worker count from config; null means the CLI or the number of CPUs decides. */
  workers: number | null;
  drainTimeoutMs: number;
  watch: boolean;
  /** Bun's idleTimeout for client connections, in seconds (1..255). */
  clientIdleTimeoutSeconds: number;
  /** The `observability` section, read by the worker's telemetry parts. */
  observability: ObservabilityConfig;
  /** The `store` section: which store policies share state through. */
  store: StoreSettings;
  /** Lower-case header and query names that policies declared as carrying secrets (always redacted in logs). */
  secretNames: { headers: readonly string[]; queryParams: readonly string[] };
  /** The configured consumers. */
  consumers: ConsumerDirectory;
  /** Forwarding of the identified consumer to upstreams; null when disabled. */
  consumerHeaders: ConsumerHeaders | null;
  /** A fingerprint of everything that needs new listeners (ports, TLS files). */
  listenerFingerprint: string;
  /** Every concurrency limit of routes and upstreams (the supervisor reclaims a dead worker's slots). */
  concurrencyLimiters: ConcurrencyLimiter[];
  dispose(): void;
}

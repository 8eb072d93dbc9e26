/**
 * The config as written in YAML, after schema validation (names mirror the YAML keys).
 */
import type { ConditionConfig, ValueMatchConfig } from "../core/condition.ts";
import type { MockConfig } from "../core/mock.ts";
import type { SplitConfig } from "../router/split.ts";
import type { ConcurrencyConfig } from "../upstream/concurrency.ts";
import type { ObservabilityConfig } from "../observability/config.ts";
import type { StoreConfig } from "../store/index.ts";
import type { ConsumerHeadersConfig } from "../auth/consumer-headers.ts";
import type { ConsumerConfig } from "../auth/consumers.ts";
export type { MockConfig };

export type Duration = number | string;
export type Size = number | string;

/** A whole config file. */
export interface TurnpikeConfig {
  listeners: ListenerConfig[];
  admin?: AdminConfig;
  server?: ServerConfig;
  upstreams: Record<string, UpstreamConfig>;
  routes: RouteConfig[];
  observability?: ObservabilityConfig;
  store?: StoreConfig;
  consumers?: ConsumerConfig[];
  consumer_headers?: ConsumerHeadersConfig;
  pre_flow?: PolicyEntryConfig[];
  post_flow?: PolicyEntryConfig[];
}

export interface ListenerConfig {
  name?: string;
  address?: string;
  port: number;
  tls?: ListenerTlsConfig;
}

export interface ListenerTlsConfig {
  /** The first certificate is the default for clients that send no or an unknown SNI name. */
  certificates: { cert: string; key: string; server_names?: string[] }[];
  /** Client certificates (mTLS) verified against these CAs. */
  client_certificates?: ClientCertificatesConfig;
}

export interface AdminConfig {
  enabled?: boolean;
  address?: string;
  port?: number;
}

export interface LimitsConfig {
  max_body_size?: Size;
  max_header_size?: Size;
  max_url_length?: number;
}

export interface ServerConfig {
  workers?: number | "auto";
  drain_timeout?: Duration;
  watch?: boolean;
  limits?: LimitsConfig;
  /** Peers (CIDR ranges) whose X-Forwarded-For names the real client. */
  trusted_proxies?: string[];
  /** Seconds a client connection may stay idle (Bun's idleTimeout, max 255). */
  client_idle_timeout?: Duration;
}

export interface TimeoutsConfig {
  connect?: Duration;
  response_headers?: Duration;
  idle?: Duration;
  total?: Duration;
}

import type { TargetConfig, TrafficConfig } from "../upstream/config.ts";
export type { TargetConfig };

export type { ClientCertificatesConfig, UpstreamTlsConfig } from "./pem.ts";
import type { ClientCertificatesConfig, UpstreamTlsConfig } from "./pem.ts";

export interface UpstreamConfig extends TrafficConfig {
  tls?: UpstreamTlsConfig;
  type?: "http" | "mock";
  targets?: TargetConfig[];
  mock?: MockConfig;
  timeouts?: TimeoutsConfig;
  concurrency?: ConcurrencyConfig;
}

export type { HeaderOpsConfig } from "../core/headers.ts";
import type { HeaderOpsConfig } from "../core/headers.ts";

export interface RouteMatchConfig {
  hosts?: string[];
  paths?: string[];
  methods?: string[];
  headers?: Record<string, ValueMatchConfig>;
  query?: Record<string, ValueMatchConfig>;
}

export interface RewriteConfig {
  strip_prefix?: string;
  path?: string;
  regex?: string;
  replacement?: string;
}

export interface RouteConfig {
  name: string;
  match?: RouteMatchConfig;
  priority?: number;
  /** Where requests go; a route has `upstream` or `split`. */
  upstream?: string;
  split?: SplitConfig;
  rewrite?: RewriteConfig;
  host_header?: "preserve" | "upstream" | { set: string };
  request_headers?: HeaderOpsConfig;
  response_headers?: HeaderOpsConfig;
  timeouts?: TimeoutsConfig;
  limits?: LimitsConfig;
  policies?: PolicyEntryConfig[];
  concurrency?: ConcurrencyConfig;
}

export interface PolicyEntryConfig {
  type: string;
  when?: ConditionConfig;
  config?: Record<string, unknown>;
}

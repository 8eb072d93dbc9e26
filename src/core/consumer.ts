/**
 * Consumers: who is calling. A consumer is configured once (top-level `consumers:`),
 * compiled into a directory, and identified per request by an authentication policy,
 * which sets `exchange.consumer`. Later policies (authorization, rate limits by
 * consumer) and the upstream (forwarded headers) read it.
 */

/** The identity of the caller of one request, as set by an authentication policy. */
export interface Consumer {
  /** The configured consumer's name, or the token subject for a caller not configured. */
  name: string;
  /** Roles and groups, merged from the consumer's config and mapped token claims. */
  roles: readonly string[];
  groups: readonly string[];
  /** OAuth2 scopes of the token that identified the caller (empty otherwise). */
  scopes: readonly string[];
  /** Claims of the token that identified the caller (empty object otherwise). */
  claims: Readonly<Record<string, unknown>>;
  /** The configured consumer's `metadata` (empty object when not configured). */
  metadata: Readonly<Record<string, unknown>>;
  /** Authentication policy types that vouched for this caller, e.g. `["api-key"]`. */
  methods: readonly string[];
}

/** One credential of a configured consumer, as written in the config (`type` plus fields). */
export interface CredentialConfig {
  type: string;
  [field: string]: unknown;
}

/** A configured consumer, compiled. */
export interface ConsumerRecord {
  name: string;
  roles: readonly string[];
  groups: readonly string[];
  metadata: Readonly<Record<string, unknown>>;
  credentials: readonly CredentialConfig[];
}

/**
 * The configured consumers of one config generation. Each authentication policy builds
 * its own index of the credentials it understands at load time (`credentials(kind)`),
 * so the hot path is a map lookup.
 */
export interface ConsumerDirectory {
  /** A consumer by name. */
  get(name: string): ConsumerRecord | undefined;
  /** Every credential of one kind (e.g. `api_key`) with the consumer owning it, in config order. */
  credentials(kind: string): readonly { consumer: ConsumerRecord; credential: CredentialConfig; path: (string | number)[] }[];
  /** Every consumer, in config order. */
  all(): readonly ConsumerRecord[];
}

/** An empty directory (no `consumers:` section). */
export const NO_CONSUMERS: ConsumerDirectory = {
  get: () => undefined,
  credentials: () => [],
  all: () => [],
};

/** The exchange's consumer for a configured consumer identified by `method`. */
export function consumerFromRecord(record: ConsumerRecord, method: string): Consumer {
  return { name: record.name, roles: record.roles, groups: record.groups, scopes: [], claims: {}, metadata: record.metadata, methods: [method] };
}

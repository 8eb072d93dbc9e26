/**
 * The policy interface: optional hooks for each phase of a request.
 * A policy stops the chain by returning a Response, never by throwing.
 */
import type { Logger } from "../observability/logger.ts";
import type { Store } from "../store/types.ts";
import type { ConsumerDirectory } from "./consumer.ts";
import type { Exchange } from "./exchange.ts";

/** Result of a request-phase hook: a Response stops the chain and is sent to the client. */
export type RequestOutcome = Response | undefined | void;

/** A configured policy instance, created once at config load. */
export interface Policy {
  /** Policy type name, e.g. `headers`. */
  readonly type: string;
  /**
   * True for a policy that identifies the caller (sets `exchange.consumer` or refuses
   * with 401); such policies may be combined by `auth` (any_of / all_of).
   */
  readonly authentication?: boolean;
  /**
   * Request headers and query parameters that carry secrets this policy reads (e.g. an
   * API key header with a custom name); logs always redact them.
   */
  readonly secrets?: { headers?: readonly string[]; queryParams?: readonly string[] };
  /** Runs in order before the upstream is called; may answer instead. */
  onRequest?(exchange: Exchange): RequestOutcome | Promise<RequestOutcome>;
  /** Runs in reverse order on the response (upstream's or a policy's); may replace it. */
  onResponse?(exchange: Exchange, response: Response): Response | Promise<Response>;
  /** Runs after the response is handed to the client; for logs and metrics; must not throw. */
  onComplete?(exchange: Exchange, response: Response): void;
  /** Releases timers or connections when a config generation is retired. */
  dispose?(): void;
}

/** What a factory gets besides its own config. */
export interface PolicyContext {
  /** Config path of this policy, for messages, e.g. `routes[1].policies[0]`. */
  path: string;
  /**
   * The process's error log, with this policy's path in every line: for what operators
   * must know (e.g. an identity provider that cannot be reached), never per request.
   */
  log: Logger;
  /** Folder that relative file paths in the config are resolved from. */
  baseDir: string;
  /**
   * The store shared by every worker of the node (or cluster), as the `store` section
   * says. Created on first call: call it when serving requests, not in `create`.
   */
  store: () => Store;
  /** The configured consumers (top-level `consumers:`), for authentication policies. */
  consumers: ConsumerDirectory;
  /**
   * Creates a nested policy (e.g. the methods of an `auth` combination) from a policy
   * entry; its errors are reported at `subPath` under this policy's `config`. Null when
   * the entry has errors (already reported).
   */
  createPolicy(entry: { type: string; when?: unknown; config?: Record<string, unknown> }, subPath: (string | number)[]): Policy | null;
}

/**
 * A policy type: its name, the JSON Schema of its `config`, an optional extra check,
 * and `create`, which turns a validated config into a Policy.
 */
export interface PolicyFactory<Config = any> {
  readonly type: string;
  /** One line for `--help` and docs. */
  readonly description: string;
  /** JSON Schema (draft 2020-12 subset) of the `config` object. */
  readonly schema: Record<string, unknown>;
  /** Checks that a schema cannot express; returns messages keyed by sub-path. */
  validate?(config: Config): { path: (string | number)[]; message: string }[];
  create(config: Config, context: PolicyContext): Policy;
}

/**
 * The `store:` config section and the store of a process.
 *
 *     store:
 *       type: embedded            # default; or another registered kind (hazelcast)
 *       embedded: { state_dir: ./state, flush_interval: 1s }
 *
 * Each store kind registers here once (STORE_KINDS) with its schema, a compile step and
 * `create`. Policies get `context.store()`, which creates the store on first use in the
 * process that serves requests (compiling a config, as the supervisor does, creates
 * none); the store outlives config generations while its settings stay the same.
 */
import type { ConfigPath } from "../config/source.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { compileEmbeddedSettings, EmbeddedStore, embeddedStoreSchema, type EmbeddedStoreSettings } from "./embedded/index.ts";
import { compileHazelcastSettings, createHazelcastStoreFromSettings, hazelcastStoreSchema, type HazelcastStoreSettings } from "./hazelcast-config.ts";
import type { Store } from "./types.ts";

/** A kind of store: its config key (== type name), schema, compile step and constructor. */
export interface StoreKind<Settings = unknown> {
  readonly type: string;
  /** JSON Schema of `store.<type>`. */
  readonly schema: Record<string, unknown>;
  /** Turns the validated `store.<type>` section into settings; reports problems through `fail`. */
  compile(config: any, baseDir: string, fail: (path: ConfigPath, message: string) => void): Settings;
  /** Creates the store; `log` is the process's error log (`observability.error_log`). */
  create(settings: Settings, log: Logger): Store;
}

const embeddedKind: StoreKind<EmbeddedStoreSettings> = {
  type: "embedded",
  schema: embeddedStoreSchema,
  compile: (config, baseDir) => compileEmbeddedSettings(config, baseDir),
  create: (settings) => new EmbeddedStore(settings),
};

const hazelcastKind: StoreKind<HazelcastStoreSettings> = {
  type: "hazelcast",
  schema: hazelcastStoreSchema,
  compile: (config, _baseDir, fail) => compileHazelcastSettings(config, fail),
  create: (settings, log) => createHazelcastStoreFromSettings(settings, log),
};

/** Every store kind; a new kind is appended here once. */
export const STORE_KINDS: StoreKind<any>[] = [embeddedKind, hazelcastKind];

/** The `store:` section as written. */
export interface StoreConfig {
  type?: string;
  [kind: string]: unknown;
}

/** JSON Schema of the `store:` section. */
export function storeSchema(): Record<string, unknown> {
  return {
    type: "object",
    additionalProperties: false,
    description: "Shared state for rate limits, quotas and other cross-worker state; default embedded.",
    properties: {
      type: { enum: STORE_KINDS.map((k) => k.type), description: "Which store serves; default embedded." },
      ...Object.fromEntries(STORE_KINDS.map((k) => [k.type, k.schema])),
    },
  };
}

/** The compiled `store:` section. */
export interface StoreSettings {
  type: string;
  /** The chosen kind's settings. */
  settings: unknown;
  /** The embedded settings, always compiled (the supervisor restores durable state from them). */
  embedded: EmbeddedStoreSettings;
  /** Equal for equal settings: a reload with the same fingerprint keeps the store. */
  fingerprint: string;
}

/** Compiles the `store:` section (validated by the schema). */
export function compileStoreSettings(config: StoreConfig | undefined, baseDir: string, fail: (path: ConfigPath, message: string) => void): StoreSettings {
  const type = config?.type ?? "embedded";
  const kind = STORE_KINDS.find((k) => k.type === type) ?? embeddedKind;
  const settings = kind.compile(config?.[type], baseDir, (path, message) => fail(["store", type, ...path], message));
  const embedded = type === "embedded" ? (settings as EmbeddedStoreSettings) : compileEmbeddedSettings(config?.embedded as never, baseDir);
  return { type, settings, embedded, fingerprint: JSON.stringify([type, settings]) };
}

/**
 * The stores of one process, by settings fingerprint. A store whose settings left the
 * config is closed a while after the switch (requests of the old generation may still use it).
 */
export class StoreHub {
  readonly #stores = new Map<string, Store>();
  #currentFingerprint: string | null = null;
  #log: Logger | null = null;

  /** The log stores write to (a worker hands its error log before serving); stderr until then. */
  setLog(log: Logger): void {
    this.#log = log;
  }

  /** The store for `settings`, created on first use. */
  get(settings: StoreSettings): Store {
    const existing = this.#stores.get(settings.fingerprint);
    if (existing) return existing;
    const kind = STORE_KINDS.find((k) => k.type === settings.type)!;
    this.#log ??= createLogger({ pid: process.pid });
    const store = kind.create(settings.settings, this.#log);
    this.#stores.set(settings.fingerprint, store);
    return store;
  }

  /** Called when a config generation takes over: stores of other settings close after `graceMs`. */
  retainOnly(settings: StoreSettings, graceMs: number): void {
    if (this.#currentFingerprint === settings.fingerprint) return;
    this.#currentFingerprint = settings.fingerprint;
    for (const [fingerprint, store] of this.#stores) {
      if (fingerprint === settings.fingerprint) continue;
      const timer = setTimeout(() => {
        if (this.#stores.get(fingerprint) === store && this.#currentFingerprint !== fingerprint) {
          this.#stores.delete(fingerprint);
          void store.close();
        }
      }, graceMs);
      timer.unref?.();
    }
  }

  /** Closes every store (a worker that exits: durable state is written). */
  async closeAll(): Promise<void> {
    const stores = [...this.#stores.values()];
    this.#stores.clear();
    await Promise.allSettled(stores.map((s) => s.close()));
  }
}

/** The stores of this process (policies reach them through `PolicyContext.store`). */
export const processStores = new StoreHub();

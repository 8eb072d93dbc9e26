/**
 * The Hazelcast store (cluster mode): every gateway process of every node talks to the
 * same Hazelcast cluster through `hazelcast-client`, so counters, values and messages are
 * shared by the whole cluster. It uses only structures that need no Java code on the
 * members: IMap entries with TTL (compare-and-swap counters, values) and reliable topics.
 *
 * Availability: the client connects in the background and reconnects by itself. While it
 * is not connected, `available` is false and every operation fails at once with
 * StoreUnavailableError (a member that hangs fails operations after `timeoutMs`), so the
 * callers (limits) apply their fail mode instead of waiting. Each transition (connected,
 * unavailable) is logged once, not per request.
 *
 *     const store = createHazelcastStore({ members: ["127.0.0.1:5701"], mode: "strict", log });
 *     const { count } = await store.increment("limit:orders:203.0.113.7", 1, 60_000);
 */
import { Client, LifecycleState, ReconnectMode, type IMap, type ITopic } from "hazelcast-client";
import type { Logger } from "../observability/logger.ts";
import { Counters, isLive, memberTtl, parseCounter } from "./hazelcast-counters.ts";
import { StoreUnavailableError, type Store, type Subscriber, type WindowCount } from "./types.ts";

export { StoreUnavailableError };

/** How counters reach the cluster. */
export type HazelcastMode = "strict" | "batched";

/** Settings of the Hazelcast store (the `store.hazelcast` config section). */
export interface HazelcastStoreOptions {
  /** Member addresses, `host:port`. */
  members: string[];
  /** Cluster name the members were started with; default `turnpike`. */
  clusterName?: string;
  /** `strict`: every increment is one exact swap on the member; `batched`: leases (see hazelcast-counters.ts). */
  mode?: HazelcastMode;
  /** Longest wait for one operation, in milliseconds, before it fails; default 1000. */
  timeoutMs?: number;
  /** Batched mode: share of a limit all processes together may take ahead; default 0.01. */
  batchShare?: number;
  /** Prefix of the map and topic names; default `turnpike`. */
  prefix?: string;
  log: Logger;
}

/** A process announces itself this often; the count of live processes sizes batched leases. */
const HEARTBEAT_MS = 1_000;
/** A process that stopped announcing itself leaves the count after this. */
const HEARTBEAT_TTL_MS = 5_000;
/** Local state of ended windows is dropped this often. */
const SWEEP_MS = 10_000;
/** At start-up, a cluster not reached within this is reported (once). */
const STARTUP_GRACE_MS = 3_000;

/** A value as stored: `"<expiresAtMs or 0>|<value>"`, so that expiry is exact to the millisecond. */
function encodeValue(value: string, ttlMs: number): string {
  return `${ttlMs > 0 ? Date.now() + ttlMs : 0}|${value}`;
}

/** The value of a stored entry, undefined when absent or past its expiry. */
function liveValue(raw: string | null | undefined, now: number): string | undefined {
  if (raw === null || raw === undefined) return undefined;
  const bar = raw.indexOf("|");
  const expiresAt = Number(raw.slice(0, bar));
  if (bar < 0 || (expiresAt !== 0 && expiresAt <= now)) return undefined;
  return raw.slice(bar + 1);
}

/** The member's TTL of a value (0: none). */
function valueTtl(ttlMs: number): number {
  return ttlMs > 0 ? memberTtl(ttlMs) : 0;
}

/** Creates the store; it connects in the background (a cluster that is down is not an error). */
export function createHazelcastStore(options: HazelcastStoreOptions): HazelcastStore {
  return new HazelcastStore(options);
}

/** The Store on a Hazelcast cluster. */
export class HazelcastStore implements Store {
  readonly kind = "hazelcast";
  readonly mode: HazelcastMode;
  readonly #options: HazelcastStoreOptions;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #prefix: string;
  readonly #id = crypto.randomUUID();
  readonly #client: Promise<Client>;
  /** One map holds counters, words and values (callers keep their keys apart). */
  #map: IMap<string, string> | null = null;
  /** The last stored form of each word this process read or wrote (a compare-and-set's guess). */
  readonly #words = new Map<string, string | null>();
  #connected = false;
  /** Whether the last logged state was "unavailable" (so each transition logs once). */
  #reportedDown = false;
  #closed = false;
  /** Gateway processes announcing themselves; 0 until the first heartbeat (batched leases wait for it). */
  #processes = 0;
  readonly #counters: Counters;
  readonly #channels = new Map<string, { subscribers: Set<Subscriber>; topic: ITopic<string> | null; listenerId: string | null }>();
  readonly #timers: ReturnType<typeof setInterval>[] = [];

  constructor(options: HazelcastStoreOptions) {
    this.#options = options;
    this.#log = options.log.child({ store: "hazelcast" });
    this.mode = options.mode ?? "strict";
    this.#timeoutMs = options.timeoutMs ?? 1_000;
    this.#prefix = options.prefix ?? "turnpike";
    this.#counters = new Counters(
      {
        putIfAbsent: (key, value, ttl) => this.#op((m) => m.putIfAbsent(key, value, ttl)).then((v) => v ?? null),
        replaceIfSame: (key, old, value) => this.#op((m) => m.replaceIfSame(key, old, value)),
        setTtl: (key, ttl) => this.#op((m) => m.setTtl(key, ttl)),
        get: (key) => this.#op((m) => m.get(key)).then((v) => v ?? null),
      },
      { batched: this.mode === "batched", share: options.batchShare ?? 0.01, processes: () => this.#processes },
    );
    this.#client = Client.newHazelcastClient({
      clusterName: options.clusterName ?? "turnpike",
      instanceName: `turnpike-${process.pid}`,
      network: { clusterMembers: options.members, connectionTimeout: 2_000 },
      connectionStrategy: {
        asyncStart: true,
        reconnectMode: ReconnectMode.ASYNC,
        connectionRetry: { initialBackoffMillis: 200, maxBackoffMillis: 2_000, multiplier: 1.5, jitter: 0.2, clusterConnectTimeoutMillis: -1 },
      },
      lifecycleListeners: [(state) => this.#onLifecycle(state)],
      properties: {
        // The client's own log would repeat every reconnect attempt; the store logs transitions.
        "hazelcast.logging.level": "OFF",
        "hazelcast.client.heartbeat.interval": 1_000,
        "hazelcast.client.heartbeat.timeout": 5_000,
        "hazelcast.client.invocation.timeout.millis": Math.max(2_000, this.#timeoutMs),
        "hazelcast.client.statistics.enabled": false,
      },
    });
    this.#client.catch((error: unknown) => this.#log.error("cannot create the Hazelcast client", { error: String(error) }));
    const startup = setTimeout(() => {
      if (!this.#connected && !this.#closed && !this.#reportedDown) {
        this.#reportedDown = true;
        this.#log.warn("cannot reach the Hazelcast cluster; limits follow their fail mode until it answers", {
          members: options.members,
          cluster: options.clusterName ?? "turnpike",
        });
      }
    }, STARTUP_GRACE_MS);
    startup.unref?.();
    this.#timers.push(startup as unknown as ReturnType<typeof setInterval>);
    this.#every(HEARTBEAT_MS, () => void this.#heartbeat());
    this.#every(SWEEP_MS, () => this.#counters.sweep());
  }

  /** Gateway processes using the cluster, as last counted (0 before the first count). */
  get processes(): number {
    return this.#processes;
  }

  get available(): boolean {
    return this.#connected && this.#map !== null && !this.#closed;
  }

  increment(key: string, delta: number, windowMs: number, limit?: number): Promise<WindowCount> {
    if (!this.available) return Promise.reject(this.#unavailable());
    return this.#counters.increment(key, delta, windowMs, limit);
  }

  async count(key: string): Promise<number> {
    return this.#counters.count(key);
  }

  async get(key: string): Promise<string | undefined> {
    return liveValue(await this.#op((m) => m.get(key)), Date.now());
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#op((m) => m.set(key, encodeValue(value, ttlMs), valueTtl(ttlMs)));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const encoded = encodeValue(value, ttlMs);
    for (let attempt = 0; attempt < 16; attempt++) {
      const existing = await this.#op((m) => m.putIfAbsent(key, encoded, valueTtl(ttlMs)));
      if (existing === null || existing === undefined) return true;
      if (liveValue(existing, Date.now()) !== undefined) return false;
      // Past its expiry but not yet dropped by the member: take its place, if nobody else does first.
      if (await this.#op((m) => m.replaceIfSame(key, existing, encoded))) {
        if (ttlMs > 0) this.#op((m) => m.setTtl(key, valueTtl(ttlMs))).catch(() => {});
        return true;
      }
    }
    return false;
  }

  async readWord(key: string): Promise<number> {
    const raw = (await this.#op((m) => m.get(key))) ?? null;
    this.#remember(key, raw);
    const parsed = parseCounter(raw);
    return isLive(parsed, Date.now()) ? parsed!.count : 0;
  }

  async compareAndSetWord(key: string, expected: number, next: number, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const fresh = `${next}:${ttlMs > 0 ? now + ttlMs : 0}`;
    // The stored form last seen is the guess; read it when this process has none.
    let raw = this.#words.has(key) ? this.#words.get(key)! : ((await this.#op((m) => m.get(key))) ?? null);
    const parsed = parseCounter(raw);
    if ((isLive(parsed, now) ? parsed!.count : 0) !== expected) {
      // The guess may be stale: read once more before saying another writer won.
      raw = (await this.#op((m) => m.get(key))) ?? null;
      const current = parseCounter(raw);
      this.#remember(key, raw);
      if ((isLive(current, now) ? current!.count : 0) !== expected) return false;
    }
    let swapped: boolean;
    if (raw === null) {
      swapped = ((await this.#op((m) => m.putIfAbsent(key, fresh, memberTtl(ttlMs)))) ?? null) === null;
    } else {
      swapped = await this.#op((m) => m.replaceIfSame(key, raw!, fresh));
      // The swap cleared the member's TTL (see hazelcast-counters.ts).
      if (swapped && ttlMs > 0) this.#op((m) => m.setTtl(key, memberTtl(ttlMs))).catch(() => {});
    }
    if (swapped) this.#remember(key, fresh);
    else this.#words.delete(key);
    return swapped;
  }

  async delete(key: string): Promise<void> {
    this.#counters.forget(key);
    this.#words.delete(key);
    await this.#op((m) => m.delete(key));
  }

  async publish(channel: string, message: string): Promise<void> {
    if (!this.available) throw this.#unavailable();
    const client = await this.#client;
    const topic = await this.#timed(client.getReliableTopic<string>(this.#topicName(channel)));
    await this.#timed(topic.publish(message));
  }

  subscribe(channel: string, subscriber: Subscriber): () => void {
    let entry = this.#channels.get(channel);
    if (!entry) {
      entry = { subscribers: new Set(), topic: null, listenerId: null };
      this.#channels.set(channel, entry);
    }
    entry.subscribers.add(subscriber);
    if (entry.subscribers.size === 1 && this.available) void this.#client.then((client) => this.#listen(client, channel)).catch(() => {});
    return () => {
      const current = this.#channels.get(channel);
      if (!current || !current.subscribers.delete(subscriber) || current.subscribers.size > 0) return;
      this.#unlisten(current);
      this.#channels.delete(channel);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    try {
      const client = await Promise.race([this.#client, Bun.sleep(this.#timeoutMs).then(() => null)]);
      if (client) {
        await this.#processMap(client)
          .then((m) => m.delete(this.#id))
          .catch(() => {});
        await client.shutdown();
      }
    } catch {
      // A client that never connected has nothing to release.
    }
  }

  #remember(key: string, raw: string | null): void {
    // A bounded guess cache: forgetting costs one read, never correctness.
    if (this.#words.size >= 10_000) this.#words.clear();
    this.#words.set(key, raw);
  }

  #every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms);
    timer.unref?.();
    this.#timers.push(timer);
  }

  #onLifecycle(state: LifecycleState): void {
    if (state === LifecycleState.CONNECTED) {
      this.#connected = true;
      void this.#prepare();
    } else if (state === LifecycleState.DISCONNECTED) {
      this.#connected = false;
      // The member may have lost its data (a restart): nothing cached locally is trusted.
      this.#counters.reset();
      this.#words.clear();
      if (!this.#closed && !this.#reportedDown) {
        this.#reportedDown = true;
        this.#log.warn("lost the Hazelcast cluster; limits follow their fail mode until it is back", { members: this.#options.members });
      }
    }
  }

  /** Once connected: proxies of the maps (they need the connection), listeners, first heartbeat. */
  async #prepare(): Promise<void> {
    try {
      const client = await this.#client;
      this.#map ??= await client.getMap(`${this.#prefix}.state`);
      // The first topic a client uses costs several round trips more than later ones:
      // pay it now, not when the first subscription must be in place quickly.
      const warm = await client.getReliableTopic<string>(`${this.#prefix}.connected`);
      warm.removeMessageListener(warm.addMessageListener(() => {}));
    } catch (error) {
      // Lost the connection again before the maps were ready; the next CONNECTED retries.
      this.#log.debug("Hazelcast maps not ready", { error: String(error) });
      return;
    }
    if (!this.#connected || this.#closed) return;
    if (this.#reportedDown) this.#log.info("Hazelcast cluster reachable again; limits are shared across the cluster", { members: this.#options.members });
    else this.#log.info("connected to the Hazelcast cluster", { members: this.#options.members, mode: this.mode });
    this.#reportedDown = false;
    await this.#heartbeat();
    await this.#client.then((client) => this.#relisten(client)).catch(() => {});
  }

  /** Announces this process and reads how many announce themselves (sizes batched leases). */
  async #heartbeat(): Promise<void> {
    if (!this.available) return;
    try {
      const client = await this.#client;
      const map = await this.#processMap(client);
      await this.#timed(map.set(this.#id, String(process.pid), HEARTBEAT_TTL_MS));
      this.#processes = Math.max(1, await this.#timed(map.size()));
    } catch {
      // Not connected now; the next beat tries again.
    }
  }

  #processMap(client: Client): Promise<IMap<string, string>> {
    return client.getMap(`${this.#prefix}.processes`);
  }

  #topicName(channel: string): string {
    return `${this.#prefix}.${channel}`;
  }

  async #listen(client: Client, channel: string): Promise<void> {
    const entry = this.#channels.get(channel);
    if (!entry || entry.listenerId !== null) return;
    try {
      const topic = await client.getReliableTopic<string>(this.#topicName(channel));
      if (entry.listenerId !== null || !this.#channels.has(channel)) return;
      entry.topic = topic;
      entry.listenerId = topic.addMessageListener((message) => {
        for (const subscriber of entry.subscribers) {
          try {
            subscriber(message.messageObject);
          } catch (error) {
            this.#log.error("subscriber failed", { channel, error: String(error) });
          }
        }
      });
    } catch (error) {
      this.#log.debug("cannot subscribe yet; will on reconnect", { channel, error: String(error) });
    }
  }

  #unlisten(entry: { topic: ITopic<string> | null; listenerId: string | null }): void {
    if (entry.topic && entry.listenerId !== null) {
      try {
        entry.topic.removeMessageListener(entry.listenerId);
      } catch {
        // The listener is gone with the connection anyway.
      }
    }
    entry.topic = null;
    entry.listenerId = null;
  }

  /** After a reconnect the member may be a new one: listen again from its current topic. */
  async #relisten(client: Client): Promise<void> {
    for (const [channel, entry] of this.#channels) {
      this.#unlisten(entry);
      if (entry.subscribers.size > 0) await this.#listen(client, channel);
    }
  }

  #unavailable(): StoreUnavailableError {
    return new StoreUnavailableError(
      this.#closed ? "the Hazelcast store is closed" : `the Hazelcast cluster (${this.#options.members.join(", ")}) is not reachable`,
    );
  }

  /** Runs one map operation with the store's timeout; fails at once while disconnected. */
  #op<T>(run: (map: IMap<string, string>) => Promise<T>): Promise<T> {
    const map = this.#map;
    if (!this.available || map === null) return Promise.reject(this.#unavailable());
    return this.#timed(run(map));
  }

  #timed<T>(promise: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`the Hazelcast cluster did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    return (Promise.race([promise, timeout]) as Promise<T>).then(
      (value) => {
        clearTimeout(timer);
        return value;
      },
      (error: unknown) => {
        clearTimeout(timer);
        // Whatever the client says (offline, member gone, timeout), callers see one kind of failure.
        throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(`Hazelcast: ${(error as Error)?.message ?? String(error)}`);
      },
    );
  }
}

/**
 * Service discovery through DNS: a target given as a host name stands for every address
 * the name resolves to, re-resolved when the records' TTL runs out, so that a service
 * (a Kubernetes headless service, say) scales without a config change.
 *
 * - `a` mode: A and AAAA records of the name; each address is a target on the URL's port.
 * - `srv` mode: SRV records of the name (`_http._tcp.orders.shop.svc.cluster.local`); each
 *   record's target host is resolved (from the answer's additional records when present)
 *   and used with the record's port and weight.
 *
 * The next lookup is due after the smallest TTL of the records used, kept between
 * `min_ttl` and `max_ttl`. A lookup that fails, or finds no address, keeps the last good
 * set; it is logged once (and its recovery once), and retried after `min_ttl`, doubling
 * up to `max_ttl` while it keeps failing.
 */
import type { Logger } from "../../observability/logger.ts";
import type { DnsRecord } from "./message.ts";
import { queryDns, type DnsServer } from "./resolver.ts";

/** `discovery` as written on an upstream. */
export interface DiscoveryConfig {
  /** `a` (default): A/AAAA records of each target's host; `srv`: SRV records. */
  type?: "a" | "srv";
  /** DNS servers (`ip` or `ip:port`); default: the nameservers of /etc/resolv.conf. */
  resolver?: string | string[];
  min_ttl?: number | string;
  max_ttl?: number | string;
  /** Longest wait for one DNS answer. */
  timeout?: number | string;
}

/** Compiled discovery settings, durations in ms. */
export interface DiscoverySettings {
  type: "a" | "srv";
  servers: DnsServer[];
  minTtlMs: number;
  maxTtlMs: number;
  timeoutMs: number;
}

/** One address a name stands for; `host`, `port` and `weight` (from the SRV record) only in srv mode. */
export interface Endpoint {
  address: string;
  host: string | null;
  port: number | null;
  weight: number | null;
}

/** Watches one name: resolves it now and again, and reports each new set of endpoints. */
export class DnsWatch {
  /** The last good set, null before the first good lookup. */
  current: Endpoint[] | null = null;
  /** Settles when the first lookup is over (whatever its outcome). */
  readonly firstLookup: Promise<void>;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #failures = 0;
  #stopped = false;
  #lastKey = "";

  constructor(
    readonly name: string,
    readonly settings: DiscoverySettings,
    readonly log: Logger,
    readonly onChange: (endpoints: Endpoint[]) => void,
  ) {
    this.firstLookup = this.#lookup();
  }

  /** Stops looking the name up (the config generation was retired). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #lookup(): Promise<void> {
    let delayMs: number;
    try {
      const found = await resolveEndpoints(this.name, this.settings);
      if (found.endpoints.length === 0) throw new Error(`${this.name} resolves to no address`);
      if (this.#stopped) return;
      if (this.#failures > 0) this.log.info("DNS discovery works again", { name: this.name, failures: this.#failures });
      this.#failures = 0;
      const key = found.endpoints.map((e) => `${e.address} ${e.port} ${e.weight}`).sort().join(",");
      this.current = found.endpoints;
      if (key !== this.#lastKey) {
        this.#lastKey = key;
        this.log.info("DNS discovery found targets", {
          name: this.name,
          addresses: found.endpoints.map((e) => (e.port === null ? e.address : `${e.address}:${e.port}`)),
          ttl_s: found.ttlSeconds,
        });
        this.onChange(found.endpoints);
      }
      delayMs = clamp(found.ttlSeconds * 1000, this.settings.minTtlMs, this.settings.maxTtlMs);
    } catch (error) {
      if (this.#stopped) return;
      this.#failures++;
      if (this.#failures === 1) {
        const keeping = this.current ? `keeping the last ${this.current.length} address(es)` : "no address known yet: requests get 503";
        this.log.warn("DNS discovery failed", { name: this.name, error: (error as Error).message, outcome: keeping });
      }
      delayMs = clamp(this.settings.minTtlMs * 2 ** Math.min(this.#failures - 1, 20), this.settings.minTtlMs, this.settings.maxTtlMs);
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#lookup(), delayMs);
    this.#timer.unref?.();
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

/** The endpoints of `name` now, and the smallest TTL (seconds) of the records used. */
export async function resolveEndpoints(name: string, settings: DiscoverySettings): Promise<{ endpoints: Endpoint[]; ttlSeconds: number }> {
  if (settings.type === "a") {
    const addresses = await resolveAddresses(name, settings, []);
    return { endpoints: addresses.records.map((r) => ({ address: r.address, host: null, port: null, weight: null })), ttlSeconds: addresses.ttlSeconds };
  }
  const srv = await queryDns(settings.servers, name, "SRV", settings.timeoutMs);
  const records = srv.answers.filter((r): r is Extract<DnsRecord, { type: "SRV" }> => r.type === "SRV");
  let ttlSeconds = records.reduce((min, r) => Math.min(min, r.ttl), Infinity);
  const endpoints: Endpoint[] = [];
  for (const record of records) {
    const addresses = await resolveAddresses(record.target, settings, srv.additional);
    ttlSeconds = Math.min(ttlSeconds, addresses.ttlSeconds);
    for (const address of addresses.records) endpoints.push({ address: address.address, host: record.target, port: record.port, weight: Math.max(1, record.weight) });
  }
  return { endpoints, ttlSeconds: Number.isFinite(ttlSeconds) ? ttlSeconds : 0 };
}

/**
 * A and AAAA records of `name`: from `known` records (an SRV answer's additional
 * section) when they hold some, otherwise asked for. Fails only if both lookups fail.
 */
async function resolveAddresses(
  name: string,
  settings: DiscoverySettings,
  known: readonly DnsRecord[],
): Promise<{ records: Extract<DnsRecord, { type: "A" | "AAAA" }>[]; ttlSeconds: number }> {
  const isAddress = (r: DnsRecord): r is Extract<DnsRecord, { type: "A" | "AAAA" }> => r.type === "A" || r.type === "AAAA";
  let records = known.filter((r) => isAddress(r) && r.name === name.toLowerCase()) as Extract<DnsRecord, { type: "A" | "AAAA" }>[];
  if (records.length === 0) {
    const outcomes = await Promise.allSettled([
      queryDns(settings.servers, name, "A", settings.timeoutMs),
      queryDns(settings.servers, name, "AAAA", settings.timeoutMs),
    ]);
    const answered = outcomes.filter((o) => o.status === "fulfilled");
    if (answered.length === 0) throw (outcomes[0] as PromiseRejectedResult).reason;
    // CNAME chains end in the address records, whatever their owner name.
    records = answered.flatMap((o) => o.value.answers.filter(isAddress));
  }
  const seen = new Set<string>();
  records = records.filter((r) => !seen.has(r.address) && seen.add(r.address));
  return { records, ttlSeconds: records.reduce((min, r) => Math.min(min, r.ttl), Infinity) };
}

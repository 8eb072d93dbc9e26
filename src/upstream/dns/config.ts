/**
 * The `discovery` setting of an upstream: its JSON Schema and its compilation, with
 * every problem reported at its path.
 */
import type { ConfigPath } from "../../config/source.ts";
import { durationSchema, parseDuration } from "../../core/units.ts";
import type { DiscoveryConfig, DiscoverySettings } from "./discovery.ts";
import { parseDnsServer, systemDnsServers, type DnsServer } from "./resolver.ts";

/** JSON Schema of `upstreams.<name>.discovery`. */
export const discoverySchema = {
  type: "object",
  additionalProperties: false,
  description: "Resolve target host names through DNS to all their addresses, again when the TTL runs out.",
  properties: {
    type: { enum: ["a", "srv"], description: "a (default): A/AAAA records of each target's host; srv: SRV records (host and port from DNS)." },
    resolver: {
      anyOf: [{ type: "string" }, { type: "array", minItems: 1, items: { type: "string" } }],
      description: "DNS server(s) as ip or ip:port ([v6]:port); default: the nameservers of /etc/resolv.conf.",
      "x-expects": "an IP address with an optional port (127.0.0.1:5353), or a list of them",
    },
    min_ttl: { ...durationSchema, description: "Shortest time between two lookups of a name (a floor on the TTL); default 1s." },
    max_ttl: { ...durationSchema, description: "Longest time between two lookups of a name (a cap on the TTL); default 5m." },
    timeout: { ...durationSchema, description: "Longest wait for one DNS answer; default 2s." },
  },
} as const;

type Fail = (path: ConfigPath, message: string) => void;

/** Compiles a schema-valid `discovery` setting; null after reporting problems through `fail`. */
export function compileDiscovery(config: DiscoveryConfig, path: ConfigPath, fail: Fail): DiscoverySettings | null {
  let ok = true;
  let servers: DnsServer[];
  if (config.resolver === undefined) {
    servers = systemDnsServers();
  } else {
    const given = Array.isArray(config.resolver) ? config.resolver : [config.resolver];
    servers = [];
    given.forEach((text, i) => {
      const server = parseDnsServer(text);
      if (server) servers.push(server);
      else {
        ok = false;
        fail(Array.isArray(config.resolver) ? [...path, "resolver", i] : [...path, "resolver"], `"${text}" is not an IP address with an optional port (e.g. 127.0.0.1:5353)`);
      }
    });
  }
  const minTtlMs = parseDuration(config.min_ttl ?? "1s");
  const maxTtlMs = parseDuration(config.max_ttl ?? "5m");
  const timeoutMs = parseDuration(config.timeout ?? "2s");
  if (minTtlMs < 100) {
    ok = false;
    fail([...path, "min_ttl"], "must be at least 100ms");
  }
  if (maxTtlMs < minTtlMs) {
    ok = false;
    fail([...path, "max_ttl"], `must not be below min_ttl (${minTtlMs} ms)`);
  }
  if (timeoutMs < 1) {
    ok = false;
    fail([...path, "timeout"], "must be above 0");
  }
  return ok ? { type: config.type ?? "a", servers, minTtlMs, maxTtlMs, timeoutMs } : null;
}

/**
 * Upstream traffic settings as a user writes them: what loads, and every mistake refused
 * at validate time with its path and line.
 */
import { describe, expect, test } from "bun:test";
import { ConfigLoader } from "../../src/config/load.ts";
import { formatError } from "../../src/config/source.ts";
import type { HttpUpstream } from "../../src/upstream/upstream.ts";

const loader = new ConfigLoader();

function errorsOf(upstream: string): string[] {
  const text = `listeners: [{ port: 0 }]\nupstreams:\n  api:\n${upstream}routes: []\n`;
  const result = loader.loadText(text, "/virtual/gw.yaml");
  if (result.ok) {
    result.loaded.graph.dispose();
    throw new Error("expected the config to be refused");
  }
  return result.errors.map((error) => formatError("gw.yaml", error));
}

function upstreamOf(upstream: string): HttpUpstream {
  const text = `listeners: [{ port: 0 }]\nupstreams:\n  api:\n${upstream}routes: []\n`;
  const result = loader.loadText(text, "/virtual/gw.yaml");
  if (!result.ok) throw new Error(result.errors.map((error) => formatError("gw.yaml", error)).join("\n"));
  return result.loaded.graph.upstreams.get("api") as HttpUpstream;
}

describe("targets", () => {
  test("URLs, host:port and objects with weight, priority and backup", () => {
    const upstream = upstreamOf(`    targets:
      - http://127.0.0.1:9001/base/
      - 127.0.0.1:9002
      - { url: "127.0.0.1:9003", weight: 3 }
      - { url: http://127.0.0.1:9004, backup: true }
      - { url: http://127.0.0.1:9005, priority: 2 }
`);
    expect(upstream.targets.map((t) => [t.url, t.basePath, t.weight, t.priority])).toEqual([
      ["http://127.0.0.1:9001/base", "/base", 1, 0],
      ["http://127.0.0.1:9002", "", 1, 0],
      ["http://127.0.0.1:9003", "", 3, 0],
      ["http://127.0.0.1:9004", "", 1, 1],
      ["http://127.0.0.1:9005", "", 1, 2],
    ]);
    expect(upstream.levels.map((level) => level.priority)).toEqual([0, 1, 2]);
  });

  test("no targets, an empty list, negative or zero weights, duplicates", () => {
    expect(errorsOf("    type: http\n")).toEqual([
      "gw.yaml: upstreams.api: an http upstream needs at least one target in `targets` (or set `type: mock`) (line 4, col 5)",
    ]);
    expect(errorsOf("    targets: []\n")).toEqual(["gw.yaml: upstreams.api.targets: must have at least 1 item(s) (line 4, col 14)"]);
    expect(errorsOf("    targets:\n      - { url: http://a:1, weight: -2 }\n      - { url: http://b:1, weight: 0 }\n")).toEqual([
      "gw.yaml: upstreams.api.targets[0].weight: must be >= 1 (line 5, col 36)",
      "gw.yaml: upstreams.api.targets[1].weight: must be >= 1 (line 6, col 36)",
    ]);
    expect(errorsOf("    targets: [http://a:1, a:1]\n")).toEqual([
      "gw.yaml: upstreams.api.targets[1]: target http://a:1 is already listed as targets[0] (line 4, col 27)",
    ]);
    expect(errorsOf("    targets:\n      - { url: http://a:1, backup: true, priority: 3 }\n")).toEqual([
      "gw.yaml: upstreams.api.targets[0]: set either backup or priority, not both (line 5, col 9)",
    ]);
  });
});

describe("impossible settings are refused with their path", () => {
  test("health checks", () => {
    expect(errorsOf(`    targets: [http://a:1]
    health_check:
      active: { interval: 1s, timeout: 2s, healthy_threshold: 0 }
      passive: { ejection_time: 60s, max_ejection_time: 10s }
`)).toEqual([
      "gw.yaml: upstreams.api.health_check.active.healthy_threshold: must be >= 1 (line 6, col 63)",
    ]);
    expect(errorsOf(`    targets: [http://a:1]
    health_check:
      active: { interval: 1s, timeout: 2s, type: tcp, path: /health }
      passive: { consecutive_failures: 3, ejection_time: 60s, max_ejection_time: 10s }
`)).toEqual([
      "gw.yaml: upstreams.api.health_check.active.timeout: must be shorter than interval (1000 ms) (line 6, col 40)",
      "gw.yaml: upstreams.api.health_check.active.path: a tcp check only connects; it has no path (line 6, col 61)",
      "gw.yaml: upstreams.api.health_check.passive.max_ejection_time: must be at least ejection_time (60000 ms) (line 7, col 82)",
    ]);
    expect(errorsOf(`    targets: [http://a:1]
    health_check:
      passive: { failure_ratio: 1.5 }
`)).toEqual(["gw.yaml: upstreams.api.health_check.passive.failure_ratio: must be <= 1 (line 6, col 33)"]);
    expect(errorsOf(`    targets: [http://a:1]
    health_check:
      passive: { window: 5s }
`)).toEqual(["gw.yaml: upstreams.api.health_check.passive: set consecutive_failures, failure_ratio or both (line 6, col 16)"]);
  });

  test("circuit breaker, retries, balancer", () => {
    expect(errorsOf(`    targets: [http://a:1]
    circuit_breaker: { open_for: 10s }
    retries: { backoff: 1s, max_backoff: 100ms }
    hash_key: header:x-user
`)).toEqual([
      "gw.yaml: upstreams.api.circuit_breaker: set failures, failure_ratio or both (line 5, col 22)",
      "gw.yaml: upstreams.api.retries.max_backoff: must be at least backoff (1000 ms) (line 6, col 42)",
      "gw.yaml: upstreams.api.hash_key: hash_key needs `balancer: consistent_hash` (line 7, col 15)",
    ]);
    expect(errorsOf(`    targets: [http://a:1]
    balancer: fastest
    circuit_breaker: { failures: 0, half_open_requests: 0 }
`)).toEqual([
      'gw.yaml: upstreams.api.balancer: must be one of: "round_robin", "weighted_round_robin", "least_connections", "consistent_hash", "p2c" (line 5, col 15)',
      "gw.yaml: upstreams.api.circuit_breaker.failures: must be >= 1 (line 6, col 34)",
      "gw.yaml: upstreams.api.circuit_breaker.half_open_requests: must be >= 1 (line 6, col 57)",
    ]);
  });

  test("traffic settings on a mock upstream", () => {
    expect(errorsOf("    type: mock\n    balancer: p2c\n")).toEqual([
      "gw.yaml: upstreams.api.balancer: a mock upstream has no balancer (it has no targets) (line 5, col 15)",
    ]);
  });
});

test("defaults: weighted round robin, no retries, no checks", () => {
  const upstream = upstreamOf("    targets: [http://a:1]\n");
  expect(upstream.balancerName).toBe("weighted_round_robin");
  expect(upstream.retry).toBeNull();
  expect(upstream.activeCheck).toBeNull();
  expect(upstream.breaker).toBeNull();
});

test("replacing the targets (service discovery) keeps the state of targets that stay and rebuilds the balancers", () => {
  const upstream = upstreamOf(`    balancer: least_connections
    targets: [http://10.9.0.1:8080, http://10.9.0.2:8080]
`);
  const changes: number[] = [];
  upstream.onTargetsChange((u) => changes.push(u.targets.length));
  const stays = upstream.targets[1]!;
  stays.begin();
  stays.begin();
  const spec = (host: string) => ({ url: `http://${host}:8080`, origin: `http://${host}:8080`, basePath: "", host: `${host}:8080`, weight: 1, priority: 0 });
  upstream.replaceTargets([spec("10.9.0.2"), spec("10.9.0.3")]);
  expect(changes).toEqual([2]);
  expect(upstream.targets.map((t) => t.url)).toEqual(["http://10.9.0.2:8080", "http://10.9.0.3:8080"]);
  expect(upstream.targets[0]!.inFlight()).toBe(2);
  for (let i = 0; i < 5; i++) expect(upstream.choose(null, null)!.url).toBe("http://10.9.0.3:8080");
  stays.end();
  stays.end();
  expect(upstream.targets[0]!.inFlight()).toBe(0);
  expect(() => upstream.replaceTargets([])).toThrow("needs at least one target");
});

/**
 * The metric registry, snapshot merging, the node's retired totals and the exposition
 * format (checked with the strict parser the integration tests use too).
 */
import { describe, expect, test } from "bun:test";
import { renderExposition } from "../../src/observability/metrics/exposition.ts";
import { mergeSnapshot, type MergedMetrics } from "../../src/observability/metrics/merge.ts";
import { NodeMetrics } from "../../src/observability/metrics/node-metrics.ts";
import type { WorkerMetricsSnapshot } from "../../src/observability/metrics/request-metrics.ts";
import { DROPPED_SERIES_METRIC, Registry } from "../../src/observability/metrics/registry.ts";
import { parseExposition } from "../helpers/prometheus.ts";

function render(...registries: Registry[]): string {
  const merged: MergedMetrics = new Map();
  for (const registry of registries) mergeSnapshot(merged, registry.snapshot());
  return renderExposition(merged);
}

describe("registry", () => {
  test("counters and gauges add up per label set", () => {
    const registry = new Registry();
    const requests = registry.counter("t_requests_total", "help", ["route"]);
    requests.series("a").add(1);
    requests.series("a").add(2);
    requests.series("b").add(5);
    const inFlight = registry.gauge("t_in_flight", "help").series();
    inFlight.add(3);
    inFlight.add(-1);
    const parsed = parseExposition(render(registry));
    expect(parsed.sum("t_requests_total", { route: "a" })).toBe(3);
    expect(parsed.sum("t_requests_total", { route: "b" })).toBe(5);
    expect(parsed.sum("t_in_flight")).toBe(2);
  });

  test("histogram observations land in the first bucket whose bound is not below them", () => {
    const registry = new Registry();
    const histogram = registry.histogram("t_seconds", "help", [], [0.1, 1]).series();
    for (const value of [0.05, 0.1, 0.5, 1, 7]) histogram.observe(value);
    const parsed = parseExposition(render(registry));
    expect(parsed.find("t_seconds_bucket").map((s) => [s.labels.le, s.value])).toEqual([
      ["0.1", 2],
      ["1", 4],
      ["+Inf", 5],
    ]);
    expect(parsed.sum("t_seconds_count")).toBe(5);
    expect(parsed.sum("t_seconds_sum")).toBeCloseTo(8.65, 10);
  });

  test("the series cap drops new label sets and counts each refusal", () => {
    const registry = new Registry(2);
    const family = registry.counter("t_total", "help", ["route"]);
    family.series("a").add(1);
    family.series("b").add(1);
    const refused = family.series("c");
    refused.add(100); // goes nowhere
    family.series("d");
    family.series("a").add(1); // existing series still count
    const parsed = parseExposition(render(registry));
    expect(parsed.find("t_total").map((s) => s.labels.route)).toEqual(["a", "b"]);
    expect(parsed.sum("t_total", { route: "a" })).toBe(2);
    expect(parsed.sum(DROPPED_SERIES_METRIC, { metric: "t_total" })).toBe(2);
  });

  test("bad names, wrong label counts and double registration are refused", () => {
    const registry = new Registry();
    expect(() => registry.counter("bad-name", "h")).toThrow();
    expect(() => registry.counter("t_x", "h", ["__reserved"])).toThrow();
    expect(() => registry.histogram("t_h", "h", ["le"])).toThrow();
    expect(() => registry.histogram("t_h2", "h", [], [1, 1])).toThrow();
    const family = registry.counter("t_ok", "h", ["a"]);
    expect(() => family.series()).toThrow();
    expect(() => registry.counter("t_ok", "h")).toThrow();
  });
});

describe("merge and exposition", () => {
  test("snapshots of several processes are summed series by series", () => {
    const make = (n: number) => {
      const registry = new Registry();
      registry.counter("t_total", "h", ["route"]).series("a").add(n);
      registry.histogram("t_seconds", "h", ["route"], [1]).series("a").observe(n);
      return registry;
    };
    const parsed = parseExposition(render(make(1), make(2), make(3)));
    expect(parsed.sum("t_total", { route: "a" })).toBe(6);
    expect(parsed.sum("t_seconds_count", { route: "a" })).toBe(3);
    expect(parsed.sum("t_seconds_bucket", { route: "a", le: "1" })).toBe(1);
    expect(parsed.sum("t_seconds_sum", { route: "a" })).toBe(6);
  });

  test("label values with backslash, quote and line feed are escaped and read back", () => {
    const registry = new Registry();
    const odd = 'a\\b"c\nd';
    registry.counter("t_total", "help with \\ and\nnewline", ["route"]).series(odd).add(1);
    const text = render(registry);
    expect(text).toContain('route="a\\\\b\\"c\\nd"');
    expect(parseExposition(text).sum("t_total", { route: odd })).toBe(1);
  });

  test("the strict parser refuses what a scraper would misread", () => {
    const good = "# HELP x_total h\n# TYPE x_total counter\nx_total 1\n";
    expect(() => parseExposition(good)).not.toThrow();
    expect(() => parseExposition(good.slice(0, -1))).toThrow("line feed");
    expect(() => parseExposition(good + "# TYPE x_total counter\n")).toThrow();
    expect(() => parseExposition('# TYPE x counter\nx{a="\\q"} 1\n')).toThrow("escape");
    expect(() => parseExposition("y 1\n")).toThrow("TYPE");
    expect(() => parseExposition("# TYPE x counter\nx 1\nx 2\n")).toThrow("duplicate");
    expect(() => parseExposition("# TYPE x counter\n# TYPE y counter\nx 1\n")).toThrow("again");
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow("cumulative");
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n')).toThrow("+Inf");
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n')).toThrow("_count");
    expect(() => parseExposition("# TYPE h histogram\nh 1\n")).toThrow("without _bucket");
  });
});

describe("node metrics", () => {
  const snapshot = (pid: number, requests: number, inFlight: number): WorkerMetricsSnapshot => {
    const registry = new Registry();
    registry.counter("t_total", "h").series().add(requests);
    registry.gauge("t_in_flight", "h").series().set(inFlight);
    return { families: registry.snapshot(), process: { pid, residentBytes: 1000, cpuSeconds: 0.5 } };
  };
  const state = (live: number[], answered = live) => ({ live, answered: new Set(answered), workers: live.length, generation: 1, restarts: 0 });

  test("an exited worker's counters stay in the total; its gauges leave", () => {
    const node = new NodeMetrics();
    node.workerReported(1, snapshot(1, 10, 2));
    node.workerReported(2, snapshot(2, 5, 1));
    let parsed = parseExposition(node.render(state([1, 2])));
    expect(parsed.sum("t_total")).toBe(15);
    expect(parsed.sum("t_in_flight")).toBe(3);
    node.workerExited(1);
    parsed = parseExposition(node.render(state([2])));
    expect(parsed.sum("t_total")).toBe(15);
    expect(parsed.sum("t_in_flight")).toBe(1);
    expect(parsed.find("turnpike_process_resident_memory_bytes").map((s) => s.labels.role).sort()).toEqual(["supervisor", "worker"]);
  });

  test("a final snapshot that arrives after the exit replaces the last one, counted once", () => {
    const node = new NodeMetrics();
    node.workerReported(1, snapshot(1, 10, 0));
    node.workerExited(1);
    node.workerReported(1, snapshot(1, 12, 0));
    const parsed = parseExposition(node.render(state([])));
    expect(parsed.sum("t_total")).toBe(12);
  });

  test("a worker that did not answer counts with its last snapshot and the scrape says so", () => {
    const node = new NodeMetrics();
    node.workerReported(1, snapshot(1, 10, 0));
    node.workerReported(2, snapshot(2, 7, 0));
    const parsed = parseExposition(node.render(state([1, 2], [1])));
    expect(parsed.sum("t_total")).toBe(17);
    expect(parsed.sum("turnpike_workers_scraped")).toBe(1);
    expect(parsed.comments.join("\n")).toContain("did not answer");
  });

  test("reload results are counted", () => {
    const node = new NodeMetrics();
    node.reloaded(true);
    node.reloaded(true);
    node.reloaded(false);
    const parsed = parseExposition(node.render(state([])));
    expect(parsed.sum("turnpike_config_reloads_total", { result: "success" })).toBe(2);
    expect(parsed.sum("turnpike_config_reloads_total", { result: "failure" })).toBe(1);
    expect(parsed.find("turnpike_build_info")[0]!.labels.version).toMatch(/^\d+\.\d+\.\d+/);
  });
});

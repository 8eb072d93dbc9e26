import { describe, expect, test } from "bun:test";
import { ConfigLoader } from "../src/config/load.ts";
import { proxyConfig, UPSTREAM_BODY, upstreamConfig } from "./nginx.ts";
import { turnpikeConfig } from "./turnpike.ts";

describe("bench configs", () => {
  test("the upstream answers exactly 48 bytes of JSON", () => {
    expect(Buffer.byteLength(UPSTREAM_BODY)).toBe(48);
    expect(JSON.parse(UPSTREAM_BODY)).toEqual({ ok: true, message: "hello from the upstream!" });
  });

  test("Turnpike accepts the bench config, with both routes on the one upstream", () => {
    const result = new ConfigLoader().loadText(turnpikeConfig(18080, 19901, 18081), "/tmp/bench.yaml");
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const graph = result.loaded.graph;
    try {
      expect(graph.listeners.map((l) => `${l.address}:${l.port}`)).toEqual(["127.0.0.1:18080"]);
      expect(graph.admin.address).toBe("127.0.0.1");
      expect(result.loaded.config.routes.map((r) => r.name)).toEqual(["plain", "policies"]);
      expect(result.loaded.config.routes[1]!.policies!.map((p) => p.type)).toEqual(["headers", "request-size-limit"]);
    } finally {
      graph.dispose();
    }
  });

  test("both nginx roles listen on 127.0.0.1 only and keep their files in the temp folder", () => {
    for (const text of [upstreamConfig("/tmp/run", 18081), proxyConfig("/tmp/run", 18082, 18081)]) {
      const listens = [...text.matchAll(/^\s*listen\s+(\S+);/gm)].map((m) => m[1]);
      expect(listens.length).toBe(1);
      expect(listens[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      for (const found of text.matchAll(/^\s*(?:pid|error_log|\w+_temp_path)\s+(\S+)/gm)) expect(found[1]!.startsWith("/tmp/run/")).toBe(true);
      expect(text).toContain("master_process off;");
      expect(text).toContain("access_log off;");
    }
  });

  test("the reference proxy pools upstream connections as the issue asks", () => {
    const text = proxyConfig("/tmp/run", 18082, 18081);
    expect(text).toMatch(/upstream backend \{\s*server 127\.0\.0\.1:18081;\s*keepalive 64;/);
    expect(text.match(/proxy_http_version 1\.1;/g)?.length).toBe(2);
    expect(text.match(/proxy_set_header Connection "";/g)?.length).toBe(2);
  });
});

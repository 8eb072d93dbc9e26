import { describe, expect, test } from "bun:test";
import { exchangeFor, policyContext } from "../../../test/helpers/exchange.ts";
import { corsPolicy } from "./index.ts";
import { checkOrigin, compileOrigins } from "./origins.ts";

describe("cors origins", () => {
  test("exact origins ignore case; patterns need at least one label", () => {
    const origins = compileOrigins(["https://App.example.com", "https://*.example.net", "http://localhost:3000"]);
    expect(origins.allows("https://app.example.com")).toBe(true);
    expect(origins.allows("https://a.b.example.net")).toBe(true);
    expect(origins.allows("https://example.net")).toBe(false);
    expect(origins.allows("https://a.example.net:8443")).toBe(false);
    expect(origins.allows("https://a.example.net.evil")).toBe(false);
    expect(origins.allows("https://evil/.example.net")).toBe(false);
    expect(origins.allows("http://localhost:3000")).toBe(true);
    expect(origins.allows("http://localhost:3001")).toBe(false);
  });
  test("checkOrigin refuses paths and bare hosts", () => {
    expect(checkOrigin("https://a.example.com")).toBeNull();
    expect(checkOrigin("null")).toBeNull();
    expect(checkOrigin("https://a.example.com/")).toContain("is not an origin");
    expect(checkOrigin("a.example.com")).toContain("is not an origin");
    expect(checkOrigin("~[")).toContain("invalid regular expression");
  });
});

describe("cors policy", () => {
  const policy = corsPolicy.create({ origins: ["https://app.example.com"], credentials: true }, policyContext());
  test("preflight answers without calling anything else", async () => {
    const exchange = exchangeFor("http://gw/x", {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "DELETE", "access-control-request-headers": "X-A, x-b" },
    });
    const answer = (await policy.onRequest!(exchange)) as Response;
    expect(answer.status).toBe(204);
    expect(answer.headers.get("access-control-allow-headers")).toBe("x-a, x-b");
    expect(exchange.decisions).toEqual(["cors:preflight"]);
    expect(await policy.onResponse!(exchange, answer)).toBe(answer);
  });
  test("the response of a refused origin loses the upstream's CORS headers", async () => {
    const exchange = exchangeFor("http://gw/x", { headers: { origin: "https://other.example.com" } });
    expect(await policy.onRequest!(exchange)).toBeUndefined();
    const upstream = new Response("x", { headers: { "access-control-allow-origin": "*", "access-control-allow-credentials": "true" } });
    const out = await policy.onResponse!(exchange, upstream);
    expect(out.headers.get("access-control-allow-origin")).toBeNull();
    expect(out.headers.get("access-control-allow-credentials")).toBeNull();
    expect(out.headers.get("vary")).toBe("Origin");
    expect(exchange.decisions).toEqual(["cors:origin-refused"]);
  });
});

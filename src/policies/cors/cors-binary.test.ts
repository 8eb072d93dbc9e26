/**
 * CORS through the built binary with real fetch: preflights answered by the gateway
 * (never forwarded), allowed and refused origins (exact, pattern, regex), credentials,
 * exposed headers, max-age, `Vary: Origin`, and the upstream's own CORS headers replaced.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { validateConfig } from "../../../test/helpers/traffic.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

let upstream: TestUpstream;
let gateway: Gateway;
let upstreamCalls: string[] = [];

beforeAll(async () => {
  upstream = startUpstream((request) => {
    upstreamCalls.push(`${request.method} ${new URL(request.url).pathname}`);
    return new Response("data", {
      headers: { "access-control-allow-origin": "*", "x-total-count": "3", "x-internal": "1", vary: "Accept-Encoding" },
    });
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
pre_flow:
  - type: cors
    when: { path: { prefix: /api } }
    config:
      origins: [https://app.example.com, "https://*.example.net", "~^https://pr-[0-9]+\\\\.preview\\\\.example\\\\.org$"]
      methods: [GET, POST, DELETE]
      headers: [content-type, authorization, x-trace]
      expose_headers: [x-total-count]
      credentials: true
      max_age: 10m
routes:
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
  - name: public
    match: { paths: ["/public/*"] }
    upstream: backend
    policies:
      - type: cors
        config: { origins: ["*"] }
`,
    { workers: 1 },
  );
});
afterAll(async () => {
  await gateway.stop();
  upstream.stop();
});

const preflight = (path: string, origin: string, method: string, headers?: string) =>
  fetch(`${gateway.url}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}) },
  });

describe("cors preflight", () => {
  test("an allowed origin gets a 204 answered by the gateway", async () => {
    upstreamCalls = [];
    const response = await preflight("/api/items", "https://app.example.com", "POST", "Content-Type, X-Trace");
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(response.headers.get("access-control-allow-methods")).toBe("GET, POST, DELETE");
    expect(response.headers.get("access-control-allow-headers")).toBe("content-type, authorization, x-trace");
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-max-age")).toBe("600");
    expect(response.headers.get("vary")).toContain("Origin");
    expect(await response.text()).toBe("");
    expect(upstreamCalls).toEqual([]);
  });

  test("patterns and regular expressions match whole origins", async () => {
    expect((await preflight("/api/x", "https://eu.shop.example.net", "GET")).status).toBe(204);
    expect((await preflight("/api/x", "https://pr-42.preview.example.org", "GET")).status).toBe(204);
    for (const origin of ["https://example.net", "https://evil.com", "http://app.example.com", "https://app.example.com.evil.com", "https://pr-x.preview.example.org", "null"]) {
      const response = await preflight("/api/x", origin, "GET");
      const body = await expectProblem(response, 403);
      expect(body.type).toBe("urn:turnpike:problem:cors-origin-forbidden");
      expect([...response.headers.keys()].filter((name) => name.startsWith("access-control-"))).toEqual([]);
      expect(response.headers.get("vary")).toBe("Origin");
    }
  });

  test("a method or header not allowed gets a 403 problem without CORS headers", async () => {
    const method = await preflight("/api/x", "https://app.example.com", "PUT");
    expect((await expectProblem(method, 403)).type).toBe("urn:turnpike:problem:cors-method-forbidden");
    expect(method.headers.get("access-control-allow-origin")).toBeNull();
    const header = await preflight("/api/x", "https://app.example.com", "GET", "content-type, x-secret");
    const body = await expectProblem(header, 403);
    expect(body.detail).toContain("x-secret");
    expect(header.headers.get("access-control-allow-origin")).toBeNull();
    const garbage = await preflight("/api/x", "https://app.example.com", "GET", "bad header(");
    await expectProblem(garbage, 403);
  });

  test("a plain OPTIONS request (no Access-Control-Request-Method) is forwarded", async () => {
    upstreamCalls = [];
    const response = await fetch(`${gateway.url}/api/x`, { method: "OPTIONS", headers: { origin: "https://app.example.com" } });
    expect(response.status).toBe(200);
    expect(upstreamCalls).toEqual(["OPTIONS /api/x"]);
  });
});

describe("cors on actual requests", () => {
  test("an allowed origin gets the CORS headers on the upstream response", async () => {
    const response = await fetch(`${gateway.url}/api/items`, { headers: { origin: "https://app.example.com" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-expose-headers")).toBe("x-total-count");
    expect(response.headers.get("vary")).toBe("Accept-Encoding, Origin");
    expect(await response.text()).toBe("data");
  });

  test("a refused origin gets the response without any CORS header, not even the upstream's", async () => {
    const response = await fetch(`${gateway.url}/api/items`, { headers: { origin: "https://evil.com" } });
    expect(response.status).toBe(200);
    expect([...response.headers.keys()].filter((name) => name.startsWith("access-control-"))).toEqual([]);
    expect(response.headers.get("vary")).toContain("Origin");
  });

  test("a request without Origin passes and says Vary: Origin", async () => {
    const response = await fetch(`${gateway.url}/api/items`);
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("vary")).toContain("Origin");
  });

  test('origins "*" answers "*" without credentials; default methods; requested headers reflected', async () => {
    const response = await fetch(`${gateway.url}/public/a`, { headers: { origin: "https://anyone.test" } });
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-allow-credentials")).toBeNull();
    // The route of /public has no OPTIONS-specific match, so the route policy answers the preflight.
    const pre = await preflight("/public/a", "https://anyone.test", "PATCH", "X-Custom");
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-methods")).toBe("GET, HEAD, POST, PUT, PATCH, DELETE");
    expect(pre.headers.get("access-control-allow-headers")).toBe("x-custom");
    expect(pre.headers.get("access-control-max-age")).toBeNull();
  });
});

test("cors config errors name path and line", () => {
  const run = validateConfig(
    `listeners: [{ port: 8080 }]
upstreams: { echo: { type: mock } }
routes:
  - name: a
    upstream: echo
    policies:
      - type: cors
        config:
          origins: ["*", "https://ok.example.com/path", "~(unclosed", "app.example.com"]
          credentials: true
`,
  );
  const out = run.lines.join("\n");
  expect(run.code).toBe(1);
  expect(out).toContain('routes[0].policies[0].config.origins[1]: "https://ok.example.com/path" is not an origin');
  expect(out).toContain("routes[0].policies[0].config.origins[2]: invalid regular expression");
  expect(out).toContain('routes[0].policies[0].config.origins[3]: "app.example.com" is not an origin');
  expect(out).toMatch(/routes\[0\]\.policies\[0\]\.config\.credentials: browsers refuse credentials with origin "\*".*\(line 10/);
});

/**
 * The quickstart example works as the README says, through the built binary
 * (ports swapped for free ones so the test can run beside anything).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { startGateway, type Gateway } from "./helpers/gateway.ts";

const example = readFileSync(resolve(import.meta.dir, "../examples/quickstart.yaml"), "utf8");
let gateway: Gateway;

beforeAll(async () => {
  gateway = await startGateway((ports) => example.replace("port: 8080", `port: ${ports.port}`).replace("port: 9901", `port: ${ports.adminPort}`), { workers: 2 });
}, 60_000);
afterAll(async () => {
  expect(await gateway.stop()).toBe(0);
}, 60_000);

test("GET /hello answers from the mock upstream with a request id", async () => {
  const response = await fetch(`${gateway.url}/hello`);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ message: "Hello from Turnpike" });
  expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  expect(response.headers.get("cache-control")).toBe("no-store");
});

test("a sane client request id is kept and echoed", async () => {
  const response = await fetch(`${gateway.url}/echo/abc?x=1`, { headers: { "x-request-id": "client-id-42" } });
  expect(response.headers.get("x-request-id")).toBe("client-id-42");
  const echo = (await response.json()) as { path: string; headers: Record<string, string> };
  expect(echo.path).toBe("/abc?x=1");
  expect(echo.headers["x-request-id"]).toBe("client-id-42");
});

test("an insane request id is replaced", async () => {
  const response = await fetch(`${gateway.url}/hello`, { headers: { "x-request-id": "bad id with spaces" } });
  expect(response.headers.get("x-request-id")).not.toBe("bad id with spaces");
});

test("unknown paths get a problem+json 404", async () => {
  const response = await fetch(`${gateway.url}/nowhere`);
  expect(response.status).toBe(404);
  expect(response.headers.get("content-type")).toBe("application/problem+json");
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status: 404, title: "Not Found" });
  expect(body.request_id).toBe(response.headers.get("x-request-id"));
});

test("the echo route refuses other media types with 415 and large bodies with 413", async () => {
  const xml = await fetch(`${gateway.url}/echo/x`, { method: "POST", body: "<a/>", headers: { "content-type": "application/xml" } });
  expect(xml.status).toBe(415);
  const big = await fetch(`${gateway.url}/echo/x`, { method: "POST", body: "x".repeat(2 * 1024 * 1024), headers: { "content-type": "text/plain" } });
  expect(big.status).toBe(413);
});

test("the admin listener answers healthz, readyz and config", async () => {
  expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);
  expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
  const config = (await (await fetch(`${gateway.adminUrl}/config`)).json()) as { routes: { name: string }[] };
  expect(config.routes.map((r) => r.name)).toEqual(["hello", "echo"]);
});

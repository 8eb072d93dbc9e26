/**
 * Every example config validates with the built binary and binds the documented
 * ports (8080 for traffic, 9901 for admin), so each can be tried the same way.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { BINARY, startGateway, type Gateway } from "./helpers/gateway.ts";
import { expectProblem } from "./helpers/problem.ts";

const dir = resolve(import.meta.dir, "../examples");
const examples = readdirSync(dir).filter((name) => name.endsWith(".yaml"));

test("there are examples", () => {
  expect(examples).toContain("quickstart.yaml");
});

for (const name of examples) {
  test(`examples/${name} validates and uses ports 8080/9901`, () => {
    const run = Bun.spawnSync([BINARY, "validate", join(dir, name)], { stdio: ["ignore", "pipe", "pipe"] });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const config = parse(readFileSync(join(dir, name), "utf8")) as { listeners: { port: number; address?: string }[]; admin?: { port?: number } };
    expect(config.listeners[0]!.port).toBe(8080);
    expect(config.admin?.port ?? 9901).toBe(9901);
  });
}

/** Starts an example on free ports (8080/9901 may be busy while tests run). */
async function startExample(name: string): Promise<Gateway> {
  const text = readFileSync(join(dir, name), "utf8");
  return startGateway((ports) => text.replace(/port: 8080\b/, `port: ${ports.port}`).replace(/port: 9901\b/, `port: ${ports.adminPort}`), { workers: 1 });
}

test("examples/api-key.yaml: GET /private answers 200 only with the demo key", async () => {
  const gateway = await startExample("api-key.yaml");
  try {
    const ok = await fetch(`${gateway.url}/private`, { headers: { apikey: "demo-key-123" } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ message: "hello from the private API" });
    await expectProblem(await fetch(`${gateway.url}/private`), 401);
    await expectProblem(await fetch(`${gateway.url}/private`, { headers: { apikey: "demo-key-124" } }), 401);
  } finally {
    await gateway.stop();
  }
});

test("examples/rate-limit.yaml: GET /limited admits 5 requests per client IP over 4 workers, then 429 with the headers", async () => {
  const text = readFileSync(join(dir, "rate-limit.yaml"), "utf8");
  const gateway = await startGateway((ports) => text.replace(/port: 8080\b/, `port: ${ports.port}`).replace(/port: 9901\b/, `port: ${ports.adminPort}`), { workers: 4 });
  try {
    // New connections each time, so that the requests reach different workers.
    const responses: Response[] = [];
    for (let i = 0; i < 7; i++) responses.push(await fetch(`${gateway.url}/limited`, { headers: { connection: "close" } }));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(responses.map((r) => r.headers.get("ratelimit")?.replace(/;t=\d+$/, ""))).toEqual([
      '"5-per-60s";r=4',
      '"5-per-60s";r=3',
      '"5-per-60s";r=2',
      '"5-per-60s";r=1',
      '"5-per-60s";r=0',
      '"5-per-60s";r=0',
      '"5-per-60s";r=0',
    ]);
    for (const response of responses) expect(response.headers.get("ratelimit-policy")).toBe('"5-per-60s";q=5;w=60');
    const retryAfter = Number(responses[5]!.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    await expectProblem(responses[6]!, 429);
  } finally {
    await gateway.stop();
  }
}, 60_000);

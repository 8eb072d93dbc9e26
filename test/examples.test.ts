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

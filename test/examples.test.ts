/**
 * Every example config validates with the built binary and binds the documented
 * ports (8080 for traffic, 9901 for admin), so each can be tried the same way.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { BINARY } from "./helpers/gateway.ts";

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

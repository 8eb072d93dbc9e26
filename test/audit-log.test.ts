/**
 * The audit log through the built binary: every reload (SIGHUP, admin API, file watch;
 * successful or failed) writes one record with who asked, the result, the old and new
 * config generation and the SHA-256 of the old and new config text.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { basics, startGateway, type Gateway, type Ports } from "./helpers/gateway.ts";

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

function template(extraRoute: string, server = ""): (ports: Ports) => string {
  return (ports) => `${basics(ports)}${server}
upstreams:
  hello:
    type: mock
    mock: { status: 200, json: { hello: true } }
routes:
  - name: hello
    match: { paths: [/hello] }
    upstream: hello
${extraRoute}
observability:
  audit_log:
    path: audit.log
`;
}

interface AuditLine {
  time: string;
  log: string;
  action: string;
  who: Record<string, unknown>;
  result: string;
  errors?: string[];
  old_generation: number;
  new_generation: number;
  old_config_sha256: string | null;
  new_config_sha256: string | null;
}

function records(gateway: Gateway): AuditLine[] {
  const path = join(gateway.dir, "audit.log");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").trimEnd().split("\n").filter(Boolean).map((line) => JSON.parse(line) as AuditLine);
}

async function waitForRecords(gateway: Gateway, count: number): Promise<AuditLine[]> {
  const deadline = performance.now() + 20_000;
  while (records(gateway).length < count && performance.now() < deadline) await Bun.sleep(25);
  return records(gateway);
}

describe("reloads by signal and admin API", () => {
  let gateway: Gateway;
  let ports: Ports;
  const texts: string[] = [];

  beforeAll(async () => {
    gateway = await startGateway((p) => {
      ports = p;
      const text = template("")(p);
      texts.push(text);
      return text;
    }, { workers: 2 });
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  test("a successful SIGHUP reload: who, result, generations and hashes", async () => {
    const next = template(`  - name: extra\n    match: { paths: [/extra] }\n    upstream: hello`)(ports);
    gateway.writeConfig(next);
    expect(await gateway.reload()).toBe("reloaded");
    const [record] = await waitForRecords(gateway, 1);
    expect(record).toMatchObject({
      log: "audit",
      action: "reload",
      who: { type: "signal", signal: "SIGHUP" },
      result: "ok",
      old_generation: 1,
      new_generation: 2,
      old_config_sha256: sha256(texts[0]!),
      new_config_sha256: sha256(next),
    });
    expect(record!.errors).toBeUndefined();
    expect(Number.isNaN(Date.parse(record!.time))).toBe(false);
    texts.push(next);
  });

  test("a failed reload: result failed with the errors, the generation unchanged, the hash of the rejected text", async () => {
    const broken = template(`  - name: broken\n    match: { paths: [/broken] }\n    upstream: nowhere`)(ports);
    gateway.writeConfig(broken);
    expect(await gateway.reload()).toBe("failed");
    const all = await waitForRecords(gateway, 2);
    expect(all[1]).toMatchObject({
      who: { type: "signal", signal: "SIGHUP" },
      result: "failed",
      old_generation: 2,
      new_generation: 2,
      old_config_sha256: sha256(texts[1]!),
      new_config_sha256: sha256(broken),
    });
    expect(all[1]!.errors!.join("\n")).toContain("nowhere");
  });

  test("the admin API: who carries the caller's address; a failed one answers 422 and is recorded", async () => {
    const failed = await fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
    expect(failed.status).toBe(422);
    gateway.writeConfig(texts[1]!);
    const ok = await fetch(`${gateway.adminUrl}/reload`, { method: "POST" });
    expect(ok.status).toBe(200);
    const all = await waitForRecords(gateway, 4);
    expect(all[2]).toMatchObject({ who: { type: "admin_api", address: "127.0.0.1" }, result: "failed", old_generation: 2, new_generation: 2 });
    expect(all[3]).toMatchObject({
      who: { type: "admin_api", address: "127.0.0.1" },
      result: "ok",
      old_generation: 2,
      new_generation: 3,
      old_config_sha256: sha256(texts[1]!),
      new_config_sha256: sha256(texts[1]!),
    });
    expect(all.length).toBe(4);
  });
});

describe("reloads by file watch", () => {
  test("saving the config file writes a file_watch record", async () => {
    let ports!: Ports;
    let first = "";
    const gateway = await startGateway((p) => {
      ports = p;
      first = template("", "server:\n  watch: true\n")(p);
      return first;
    }, { workers: 2 });
    try {
      const next = template(`  - name: watched\n    match: { paths: [/watched] }\n    upstream: hello`, "server:\n  watch: true\n")(ports);
      gateway.writeConfig(next);
      const [record] = await waitForRecords(gateway, 1);
      expect(record).toMatchObject({
        who: { type: "file_watch", file: gateway.configPath },
        result: "ok",
        old_generation: 1,
        new_generation: 2,
        old_config_sha256: sha256(first),
        new_config_sha256: sha256(next),
      });
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

describe("default destination", () => {
  test("without audit_log the records go to stderr", async () => {
    const gateway = await startGateway((ports) => `${basics(ports)}
upstreams:
  hello:
    type: mock
    mock: { status: 200 }
routes:
  - name: hello
    match: { paths: [/hello] }
    upstream: hello
`);
    try {
      expect(await gateway.reload()).toBe("reloaded");
      const deadline = performance.now() + 5_000;
      while (!gateway.logs().includes('"log":"audit"') && performance.now() < deadline) await Bun.sleep(20);
      const line = gateway.logs().split("\n").find((l) => l.includes('"log":"audit"'))!;
      expect(JSON.parse(line)).toMatchObject({ action: "reload", who: { type: "signal", signal: "SIGHUP" }, result: "ok", old_generation: 1, new_generation: 2 });
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

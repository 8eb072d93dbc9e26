/**
 * Every example config validates with the built binary and binds the documented
 * ports (8080 for traffic, 9901 for admin), so each can be tried the same way.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { BINARY, startGateway, type Gateway } from "./helpers/gateway.ts";
import { hazelcastMissing, startMember } from "./helpers/hazelcast.ts";
import { expectProblem } from "./helpers/problem.ts";

// The preload's default does not always reach every file of a run; these start real gateways.
setDefaultTimeout(60_000);

const dir = resolve(import.meta.dir, "../examples");
// The TLS examples name throwaway certificates that scripts/dev-certs.sh writes (never committed).
const certs = Bun.spawnSync([resolve(import.meta.dir, "../scripts/dev-certs.sh")], { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
if (certs.exitCode !== 0) throw new Error(`scripts/dev-certs.sh failed: ${certs.stderr.toString()}`);
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

test("examples/upstreams.yaml: requests reach the primaries, never the backup; GET /upstreams shows all three healthy", async () => {
  const text = readFileSync(join(dir, "upstreams.yaml"), "utf8");
  const gateway = await startGateway(
    (ports) => text.replaceAll("8080", String(ports.port)).replaceAll("8081", String(ports.port2)).replaceAll("9901", String(ports.adminPort)),
    { workers: 2 },
  );
  try {
    const paths = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${gateway.url}/api/items`, { headers: { connection: "close" } });
      expect(response.status).toBe(200);
      paths.add(((await response.json()) as { path: string }).path);
    }
    for (const path of paths) expect(["/primary-a/items", "/primary-b/items"]).toContain(path);
    const view = (await (await fetch(`${gateway.adminUrl}/upstreams`)).json()) as { upstreams: { api: { balancer: string; targets: { url: string; healthy: boolean; priority: number }[] } } };
    expect(view.upstreams.api.balancer).toBe("least_connections");
    expect(view.upstreams.api.targets.map((t) => [t.url.replace(/:\d+/, ""), t.priority, t.healthy])).toEqual([
      ["http://127.0.0.1/primary-a", 0, true],
      ["http://127.0.0.1/primary-b", 0, true],
      ["http://127.0.0.1/backup", 1, true],
    ]);
  } finally {
    await gateway.stop();
  }
}, 60_000);

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

test("examples/basic-auth.yaml: GET /admin answers 200 only with demo:demo-password (curl)", async () => {
  const gateway = await startExample("basic-auth.yaml");
  try {
    const status = async (...args: string[]) => {
      const run = Bun.spawn(["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", ...args, `${gateway.url}/admin`], { stdout: "pipe" });
      return new Response(run.stdout).text();
    };
    expect(await status("-u", "demo:demo-password")).toBe("200");
    expect(await status("-u", "demo:wrong")).toBe("401");
    const refused = await fetch(`${gateway.url}/admin`);
    await expectProblem(refused, 401);
    expect(refused.headers.get("www-authenticate")).toBe('Basic realm="admin", charset="UTF-8"');
  } finally {
    await gateway.stop();
  }
});

test("examples/jwt.yaml: the tokens in its comments get 200 and 403; none or garbage 401", async () => {
  const text = readFileSync(join(dir, "jwt.yaml"), "utf8");
  const [reader, profile] = [...text.matchAll(/TOKEN=(\S+)/g)].map((m) => m[1]!);
  const gateway = await startExample("jwt.yaml");
  try {
    const ok = await fetch(`${gateway.url}/reports`, { headers: { authorization: `Bearer ${reader}` } });
    expect(ok.status).toBe(200);
    const lacking = await fetch(`${gateway.url}/reports`, { headers: { authorization: `Bearer ${profile}` } });
    await expectProblem(lacking, 403);
    expect(lacking.headers.get("www-authenticate")).toBe('Bearer error="insufficient_scope", scope="reports:read"');
    const none = await fetch(`${gateway.url}/reports`);
    await expectProblem(none, 401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="turnpike"');
    await expectProblem(await fetch(`${gateway.url}/reports`, { headers: { authorization: "Bearer garbage" } }), 401);
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
/**
 * The examples of the identity and access policies, run as documented (ports swapped for
 * free ones so tests may run beside a gateway on 8080).
 */
describe("access examples behave as their comments say", () => {
  const run = async (name: string, check: (url: string, port: number) => Promise<void>) => {
    const text = readFileSync(join(dir, name), "utf8");
    const gateway = await startGateway((ports) => text.replace("port: 8080", `port: ${ports.port}`).replace("port: 9901", `port: ${ports.adminPort}`).replaceAll(" certs/", ` ${dir}/certs/`), { workers: 1 });
    try {
      await check(gateway.url, gateway.ports.port);
    } finally {
      await gateway.stop();
    }
  };

  test("ip-restriction.yaml", () =>
    run("ip-restriction.yaml", async (url) => {
      expect((await fetch(`${url}/internal`)).status).toBe(200);
      expect((await fetch(`${url}/partners`)).status).toBe(403);
      expect((await fetch(`${url}/partners`, { headers: { "x-forwarded-for": "203.0.113.9" } })).status).toBe(200);
      expect((await fetch(`${url}/partners`, { headers: { "x-forwarded-for": "203.0.113.66" } })).status).toBe(403);
      expect((await fetch(`${url}/partners`, { headers: { "x-forwarded-for": "garbage" } })).status).toBe(400);
    }));

  test("cors.yaml", () =>
    run("cors.yaml", async (url) => {
      const preflight = (origin: string) =>
        fetch(`${url}/api/orders`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
      const ok = await preflight("https://app.example.com");
      expect(ok.status).toBe(204);
      expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      const refused = await preflight("https://evil.example");
      expect(refused.status).toBe(403);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
      const actual = await fetch(`${url}/api/orders`, { headers: { origin: "https://app.example.com" } });
      expect(actual.status).toBe(200);
      expect(actual.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    }));

  test("mtls.yaml with curl as its comments say", () =>
    run("mtls.yaml", async (_url, port) => {
      const curl = (path: string, who?: string) => {
        const args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", join(dir, "certs/server-ca.pem"), "--resolve", `localhost:${port}:127.0.0.1`];
        if (who) args.push("--cert", join(dir, `certs/${who}.pem`), "--key", join(dir, `certs/${who}.key`));
        args.push(`https://localhost:${port}${path}`);
        return Bun.spawnSync(args, { stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 }).stdout.toString();
      };
      expect(curl("/public")).toBe("200");
      expect(curl("/private")).toBe("401");
      expect(curl("/private", "alice")).toBe("200");
      expect(curl("/private", "billing")).toBe("200");
    }));

  test("hmac-auth.yaml with the shell client of docs/auth/hmac-auth.md", () =>
    run("hmac-auth.yaml", async (url, port) => {
      const doc = readFileSync(resolve(import.meta.dir, "../docs/auth/hmac-auth.md"), "utf8");
      const script = doc.match(/```sh\n(SECRET=[\s\S]+?)```/)![1]!.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`);
      const shell = Bun.spawnSync(["bash", "-c", script], { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
      expect(shell.stderr.toString()).toBe("");
      expect(shell.stdout.toString()).toBe("200\n401\n");
      expect((await fetch(`${url}/orders`)).status).toBe(401);
    }));
});

test("examples/traffic-split.yaml: weighted canary, A/B rules, sticky cookie and a concurrency limit as its comments say", async () => {
  const gateway = await startExample("traffic-split.yaml");
  try {
    const version = async (path: string, init?: RequestInit) => ((await (await fetch(`${gateway.url}${path}`, init)).json()) as { version: string }).version;
    const versions: string[] = [];
    for (let i = 0; i < 8; i++) versions.push(await version("/shop/items"));
    expect(versions.filter((v) => v === "v1").length).toBe(6);
    expect(versions.filter((v) => v === "v2").length).toBe(2);
    expect(await version("/shop/items", { headers: { "x-beta": "1" } })).toBe("beta");
    expect(await version("/shop/items", { headers: { cookie: "channel=preview" } })).toBe("beta");

    const first = await fetch(`${gateway.url}/cart`);
    expect(first.headers.get("set-cookie")).toStartWith("tp_cart=");
    const side = ((await first.json()) as { version: string }).version;
    const cookie = first.headers.get("set-cookie")!.split(";")[0]!;
    for (let i = 0; i < 5; i++) expect(await version("/cart", { headers: { cookie } })).toBe(side);

    const statuses = await Promise.all([0, 1, 2].map(() => fetch(`${gateway.url}/reports`).then((r) => r.status)));
    expect(statuses.sort()).toEqual([200, 200, 503]);
  } finally {
    await gateway.stop();
  }
}, 60_000);

test.skipIf(hazelcastMissing !== null)("examples/cluster.yaml: two nodes on one member share 5 per minute per client; without the member /limited falls back and /orders answers 503", async () => {
  const member = await startMember();
  const text = readFileSync(join(dir, "cluster.yaml"), "utf8").replaceAll("127.0.0.1:5701", member.address);
  const nodes: Gateway[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      nodes.push(await startGateway((ports) => text.replace("port: 8080", `port: ${ports.port}`).replace("port: 9901", `port: ${ports.adminPort}`), { workers: 1 }));
    }
    for (const node of nodes) {
      for (let i = 0; i < 400 && !node.logs().includes("connected to the Hazelcast cluster"); i++) await Bun.sleep(50);
    }
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await fetch(`${nodes[i % 2]!.url}/limited`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect((await fetch(`${nodes[0]!.url}/orders`)).status).toBe(200);

    await member.stop();
    for (const node of nodes) {
      for (let i = 0; i < 400 && !node.logs().includes("lost the Hazelcast cluster"); i++) await Bun.sleep(50);
    }
    expect((await fetch(`${nodes[0]!.url}/limited`)).status).toBe(200);
    await expectProblem(await fetch(`${nodes[1]!.url}/orders`), 503);
  } finally {
    for (const node of nodes) await node.stop();
    await member.stop();
  }
}, 120_000);

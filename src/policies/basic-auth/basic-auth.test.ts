/**
 * `basic-auth` through the built binary with argon2id and bcrypt hashes made here:
 * the right password passes, anything else gets 401 with a Basic challenge, malformed
 * headers included; the Authorization header is not forwarded.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

let upstream: TestUpstream;
let gateway: Gateway;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

beforeAll(async () => {
  upstream = startUpstream((request) => Response.json({ headers: Object.fromEntries(request.headers) }));
  const argon = await Bun.password.hash("correct horse", { algorithm: "argon2id" });
  const bcrypt = await Bun.password.hash("battery staple", { algorithm: "bcrypt", cost: 4 });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: ana
    roles: [ops]
    credentials: [{ type: basic, username: ana, password_hash: "${argon}" }]
  - name: bo
    credentials: [{ type: basic, username: "bö", password_hash: "${bcrypt}" }]
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: admin
    match: { paths: ["/admin/*"] }
    upstream: backend
    policies:
      - type: basic-auth
        config: { realm: admin area }
`,
    { workers: 1 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
});

test("argon2id and bcrypt passwords (UTF-8 user names) pass, many times, and the header is not forwarded", async () => {
  for (let i = 0; i < 5; i++) {
    const response = await fetch(`${gateway.url}/admin/x`, { headers: { authorization: basic("ana", "correct horse") } });
    expect(response.status).toBe(200);
    const { headers } = (await response.json()) as { headers: Record<string, string> };
    expect(headers.authorization).toBeUndefined();
    expect(headers["x-consumer-id"]).toBe("ana");
    expect(headers["x-consumer-roles"]).toBe("ops");
  }
  const bo = await fetch(`${gateway.url}/admin/x`, { headers: { authorization: basic("bö", "battery staple") } });
  expect(bo.status).toBe(200);
  expect(((await bo.json()) as { headers: Record<string, string> }).headers["x-consumer-id"]).toBe("bo");
});

test("curl --basic works", async () => {
  // Async: the upstream runs in this process and must keep answering while curl runs.
  const run = Bun.spawn(["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "--basic", "-u", "ana:correct horse", `${gateway.url}/admin/x`], { stdout: "pipe" });
  expect(await new Response(run.stdout).text()).toBe("200");
});

test("wrong passwords, unknown users and malformed headers get 401 with the Basic challenge", async () => {
  const cases = [
    undefined,
    basic("ana", "wrong"),
    basic("ana", "correct horse "),
    basic("nobody", "correct horse"),
    basic("bo", "battery staple"),
    "Basic",
    "Basic !!!!",
    "Basic YW5h",
    `Basic ${Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString("base64")}`,
    `Basic ${"A".repeat(6000)}`,
    "Bearer abc",
  ];
  for (const authorization of cases) {
    const response = await fetch(`${gateway.url}/admin/x`, { headers: authorization ? { authorization } : {} });
    const body = await expectProblem(response, 401);
    expect(response.headers.get("www-authenticate")).toBe('Basic realm="admin area", charset="UTF-8"');
    expect(JSON.stringify(body)).not.toContain("ana");
  }
});

test("a burst of concurrent requests with one credential all pass", async () => {
  const responses = await Promise.all(
    Array.from({ length: 20 }, () => fetch(`${gateway.url}/admin/burst`, { headers: { authorization: basic("bö", "battery staple") } })),
  );
  expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
});

/**
 * `api-key` and the consumer model through the built binary: keys in a header or the
 * query, 401 problem+json without or with a wrong key, the consumer forwarded to the
 * upstream as headers (client-sent copies stripped), the key not forwarded, and the
 * access log's consumer field.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashApiKey } from "../../auth/secrets.ts";
import { BINARY, basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

const KEY = "k3y-for-billing-0123456789";
const OTHER_KEY = "another-key-for-reports-42";

let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  upstream = startUpstream((request) => {
    const url = new URL(request.url);
    return Response.json({ path: url.pathname + url.search, headers: Object.fromEntries(request.headers) });
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: billing
    roles: [billing, reader]
    groups: [internal]
    metadata: { plan: gold }
    credentials:
      - { type: api_key, key_hash: "${hashApiKey(KEY)}" }
  - name: reports
    credentials:
      - { type: api_key, key_hash: "${hashApiKey(OTHER_KEY)}" }
consumer_headers:
  metadata: { X-Consumer-Plan: plan }
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: header-key
    match: { paths: ["/h/*"] }
    upstream: backend
    policies:
      - type: api-key
        config: { header: X-API-Key }
  - name: query-key
    match: { paths: ["/q/*"] }
    upstream: backend
    policies:
      - type: api-key
        config: { query: api_key, realm: reports }
  - name: forwarded-key
    match: { paths: ["/f/*"] }
    upstream: backend
    policies:
      - type: api-key
        config: { forward_key: true }
  - name: open
    match: { paths: ["/open/*"] }
    upstream: backend
observability:
  access_log: { path: access.log, fields: [request_id, route, consumer, status] }
`,
    { workers: 1 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
});

async function json(response: Response): Promise<{ path: string; headers: Record<string, string> }> {
  expect(response.status).toBe(200);
  return (await response.json()) as { path: string; headers: Record<string, string> };
}

describe("api-key", () => {
  test("a valid key in the header reaches the upstream with the consumer headers and without the key", async () => {
    const body = await json(await fetch(`${gateway.url}/h/x`, { headers: { "x-api-key": KEY, "x-request-id": "ak-ok" } }));
    expect(body.headers["x-api-key"]).toBeUndefined();
    expect(body.headers["x-consumer-id"]).toBe("billing");
    expect(body.headers["x-consumer-roles"]).toBe("billing,reader");
    expect(body.headers["x-consumer-groups"]).toBe("internal");
    expect(body.headers["x-consumer-plan"]).toBe("gold");
  });

  test("client-sent consumer headers are stripped, with or without authentication", async () => {
    const forged = { "x-consumer-id": "admin", "x-consumer-roles": "admin", "x-consumer-plan": "platinum", "x-consumer-scopes": "all" };
    const open = await json(await fetch(`${gateway.url}/open/x`, { headers: forged }));
    for (const name of Object.keys(forged)) expect(open.headers[name]).toBeUndefined();
    const authed = await json(await fetch(`${gateway.url}/h/x`, { headers: { ...forged, "x-api-key": OTHER_KEY } }));
    expect(authed.headers["x-consumer-id"]).toBe("reports");
    expect(authed.headers["x-consumer-roles"]).toBeUndefined();
    expect(authed.headers["x-consumer-plan"]).toBeUndefined();
    expect(authed.headers["x-consumer-scopes"]).toBeUndefined();
  });

  test("no key, an empty key, a wrong key and a huge key get 401 problem+json with a challenge", async () => {
    const cases: Record<string, string>[] = [{}, { "x-api-key": "" }, { "x-api-key": "wrong" }, { "x-api-key": `${KEY}x` }, { "x-api-key": "k".repeat(5000) }, { apikey: KEY }];
    for (const headers of cases) {
      const response = await fetch(`${gateway.url}/h/x`, { headers });
      const body = await expectProblem(response, 401);
      expect(body.type).toBe("urn:turnpike:problem:unauthorized");
      expect(response.headers.get("www-authenticate")).toBe('ApiKey realm="turnpike", header="x-api-key"');
      expect(JSON.stringify(body)).not.toContain(KEY);
    }
    expect(upstream.seen.every((seen) => !seen.path.startsWith("/h/") || seen.headers.get("x-consumer-id") !== null)).toBe(true);
  });

  test("a key in the query parameter is accepted and removed before forwarding", async () => {
    const body = await json(await fetch(`${gateway.url}/q/x?page=2&api_key=${encodeURIComponent(OTHER_KEY)}&sort=asc`));
    expect(body.path).toBe("/q/x?page=2&sort=asc");
    expect(body.headers["x-consumer-id"]).toBe("reports");
    const refused = await fetch(`${gateway.url}/q/x?api_key=nope`);
    await expectProblem(refused, 401);
    expect(refused.headers.get("www-authenticate")).toBe('ApiKey realm="reports"');
  });

  test("forward_key keeps the default apikey header for the upstream", async () => {
    const body = await json(await fetch(`${gateway.url}/f/x`, { headers: { apikey: KEY } }));
    expect(body.headers.apikey).toBe(KEY);
    expect(body.headers["x-consumer-id"]).toBe("billing");
  });

  test("the access log names the consumer, and null for anonymous or refused calls", async () => {
    await (await fetch(`${gateway.url}/h/y`, { headers: { "x-api-key": KEY, "x-request-id": "ak-log-1" } })).arrayBuffer();
    await (await fetch(`${gateway.url}/h/y`, { headers: { "x-api-key": "bad", "x-request-id": "ak-log-2" } })).arrayBuffer();
    await (await fetch(`${gateway.url}/open/y`, { headers: { "x-request-id": "ak-log-3" } })).arrayBuffer();
    const path = join(gateway.dir, "access.log");
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 100 && lines.filter((l) => String(l.request_id).startsWith("ak-log-")).length < 3; i++) {
      await Bun.sleep(50);
      try {
        lines = readFileSync(path, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
      } catch {
        // not written yet
      }
    }
    const byId = (id: string) => lines.find((l) => l.request_id === id);
    expect(byId("ak-log-1")).toEqual({ request_id: "ak-log-1", route: "header-key", consumer: "billing", status: 200 });
    expect(byId("ak-log-2")).toEqual({ request_id: "ak-log-2", route: "header-key", consumer: null, status: 401 });
    expect(byId("ak-log-3")).toEqual({ request_id: "ak-log-3", route: "open", consumer: null, status: 200 });
  });

  test("GET /config on the admin API shows the consumers with their key hashes redacted", async () => {
    const response = await fetch(`${gateway.adminUrl}/config`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).toContain("billing");
    expect(text).toContain("[redacted]");
    expect(text).not.toContain(hashApiKey(KEY).slice(7));
  });
});

describe("consumers config", () => {
  function validate(name: string, text: string): { code: number; stderr: string } {
    const file = join(gateway.dir, name);
    writeFileSync(file, text);
    const run = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
    return { code: run.exitCode, stderr: run.stderr.toString() };
  }
  const head = `listeners: [{ port: 8080 }]
upstreams: { u: { type: mock } }
routes: [{ name: r, upstream: u }]
consumers:
`;

  test("credentials that break the schema are errors with path and line, and secrets are not echoed", () => {
    const { code, stderr } = validate("schema.yaml", `${head}  - name: a
    credentials:
      - { type: api_key, key_hash: "plain-text-key" }
      - { type: basic, username: bob, password_hash: "secret-pw" }
      - { type: mtls, subject: CN=a, extra: 1 }
`);
    expect(code).toBe(1);
    expect(stderr).toMatch(/consumers\[0\]\.credentials\[0\]\.key_hash: the value is not valid.*line 7/);
    expect(stderr).toMatch(/consumers\[0\]\.credentials\[1\]\.password_hash: the value is not valid.*line 8/);
    expect(stderr).toMatch(/consumers\[0\]\.credentials\[2\]\.extra: unknown key.*line 9/);
    expect(stderr).not.toContain("plain-text-key");
    expect(stderr).not.toContain("secret-pw");
  });

  test("ambiguous consumers are errors: a credential held twice, a name used twice, a jwt credential without subject", () => {
    const { code, stderr } = validate("compile.yaml", `${head}  - name: a
    credentials:
      - { type: jwt, issuer: https://idp }
  - name: b
    credentials:
      - { type: api_key, key_hash: "${hashApiKey("x")}" }
      - { type: api_key, key_hash: "${hashApiKey("x")}" }
  - name: b
`);
    expect(code).toBe(1);
    expect(stderr).toMatch(/consumers\[0\]\.credentials\[0\]: set either subject, or claim and value.*line 7/);
    expect(stderr).toMatch(/consumers\[1\]\.credentials\[1\]: this api_key credential is already held by consumer "b".*line 11/);
    expect(stderr).toMatch(/consumers\[2\]\.name: consumer name "b" is used twice.*line 12/);
  });

  test("turnpike hash-key prints the key_hash the policy accepts", () => {
    const run = Bun.spawnSync([BINARY, "hash-key", KEY], { stdio: ["ignore", "pipe", "pipe"] });
    expect(run.exitCode).toBe(0);
    expect(run.stdout.toString().trim()).toBe(hashApiKey(KEY));
    const fromStdin = Bun.spawnSync([BINARY, "hash-key"], { stdin: new TextEncoder().encode(`${KEY}\n`), stdout: "pipe", stderr: "pipe" });
    expect(fromStdin.stdout.toString().trim()).toBe(hashApiKey(KEY));
  });

  test("turnpike hash-password prints a hash Bun.password verifies", async () => {
    const run = Bun.spawnSync([BINARY, "hash-password", "s3cret-pw"], { stdio: ["ignore", "pipe", "pipe"] });
    const hash = run.stdout.toString().trim();
    expect(hash).toStartWith("$argon2id$");
    expect(await Bun.password.verify("s3cret-pw", hash)).toBe(true);
    expect(await Bun.password.verify("other", hash)).toBe(false);
    const bcrypt = Bun.spawnSync([BINARY, "hash-password", "--bcrypt", "s3cret-pw"], { stdio: ["ignore", "pipe", "pipe"] }).stdout.toString().trim();
    expect(bcrypt).toStartWith("$2b$");
    expect(await Bun.password.verify("s3cret-pw", bcrypt)).toBe(true);
  });
});

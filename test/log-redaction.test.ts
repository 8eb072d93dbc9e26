/**
 * Redaction, end to end: an auth-heavy run (bearer tokens, Basic auth, cookies, API keys
 * in the query and in headers, an upstream that sets cookies, a dead upstream, an
 * unrouted path, reloads) with every log on at its most talkative, then every byte of
 * log output (access log, error log, audit log, stdout and stderr) is scanned for the
 * secrets: none may appear.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { SignJWT } from "jose";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

// Starts a gateway with two workers on a busy machine: generous per-test time.
setDefaultTimeout(60_000);

const SECRETS = {
  bearer: "BearerSecret7f3a9c",
  basicPassword: "BasicPassw0rd42x",
  cookie: "CookieSecret88kq",
  setCookie: "SetCookieSecret19zz",
  queryApiKey: "QueryApiKey55mm",
  queryToken: "QueryToken77nn",
  queryAccessToken: "QueryAccessTok31",
  queryPassword: "QueryPassword64",
  queryCustom: "QueryCustomParam12",
  headerApiKey: "HeaderApiKey90pp",
  headerCustom: "HeaderCustom11rr",
  proxyAuth: "ProxyAuthSecret23",
};
/** Credentials of the authentication policies: each is used for real and must never be logged. */
const AUTH_SECRETS = {
  consumerKey: "ConsumerApiKey31xq",
  jwtSecret: "JwtSigningSecret-0123456789abcdefghij",
  digestPassword: "DigestPassw0rd88",
  wrongKey: "WrongApiKey64tt",
  customQueryKey: "CustomQueryKey47",
};
let jwtToken = "";
const basicCredentials = btoa(`alice:${SECRETS.basicPassword}`);
const proxyCredentials = btoa(`proxy:${SECRETS.proxyAuth}`);

let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  upstream = startUpstream(() => {
    const headers = new Headers({ "content-type": "text/plain" });
    headers.append("set-cookie", `session=${SECRETS.setCookie}; HttpOnly`);
    headers.append("set-cookie", `other=${SECRETS.setCookie}2`);
    return new Response("ok", { headers });
  });
  const deadPort = freePort();
  jwtToken = await new SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(new TextEncoder().encode(AUTH_SECRETS.jwtSecret));
  const keyHash = `sha256:${createHash("sha256").update(AUTH_SECRETS.consumerKey).digest("hex")}`;
  const passwordHash = await Bun.password.hash(SECRETS.basicPassword, { algorithm: "bcrypt", cost: 4 });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
  dead:
    targets: [http://127.0.0.1:${deadPort}]
consumers:
  - name: alice
    credentials:
      - { type: api_key, key_hash: "${keyHash}" }
      - { type: basic, username: alice, password_hash: "${passwordHash}" }
      - { type: digest, username: alice, password: "${AUTH_SECRETS.digestPassword}" }
routes:
  - name: auth-key
    match: { paths: ["/auth/key/*"] }
    upstream: backend
    policies: [{ type: api-key, config: { header: x-tenant-key, query: tenant_key } }]
  - name: auth-basic
    match: { paths: ["/auth/basic/*"] }
    upstream: backend
    policies: [{ type: basic-auth }]
  - name: auth-jwt
    match: { paths: ["/auth/jwt/*"] }
    upstream: backend
    policies: [{ type: jwt, config: { secret: "${AUTH_SECRETS.jwtSecret}" } }]
  - name: auth-digest
    match: { paths: ["/auth/digest/*"] }
    upstream: backend
    policies: [{ type: digest-auth }]
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
  - name: dead
    match: { paths: ["/dead/*"] }
    upstream: dead
observability:
  access_log:
    path: access.log
    fields: [time, request_id, route, consumer, client_ip, method, host, path, query, status, bytes_in, bytes_out, upstream, upstream_latency_ms, latency_ms, retries, user_agent, request_headers]
    request_headers: [x-tenant-key, authorization, proxy-authorization, cookie, x-api-key, x-custom-secret, user-agent, accept]
  error_log:
    path: error.log
    level: debug
  audit_log:
    path: audit.log
  redaction:
    headers: [x-api-key, X-Custom-Secret]
    query_params: [custom_param]
`,
    { workers: 2, env: { TURNPIKE_LOG_LEVEL: "debug" } },
  );
});
afterAll(() => upstream.stop());

/** Every kind of credential at once. */
function credentials(i: number): { query: string; headers: Record<string, string> } {
  const query =
    `?api_key=${SECRETS.queryApiKey}&token=${SECRETS.queryToken}&ACCESS_TOKEN=${SECRETS.queryAccessToken}` +
    `&password=${SECRETS.queryPassword}&custom_param=${SECRETS.queryCustom}&page=${i}`;
  const headers: Record<string, string> = {
    authorization: i % 2 === 0 ? `Bearer ${SECRETS.bearer}` : `Basic ${basicCredentials}`,
    "proxy-authorization": `Basic ${proxyCredentials}`,
    cookie: `session=${SECRETS.cookie}; theme=dark`,
    "x-api-key": SECRETS.headerApiKey,
    "x-custom-secret": SECRETS.headerCustom,
    accept: "text/plain",
  };
  return { query, headers };
}

test("no secret of an auth-heavy run appears in any log output", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) {
    const { query, headers } = credentials(i);
    const path = i % 4 === 3 ? "/nowhere" : i % 8 === 1 ? "/dead/x" : "/api/x";
    const response = await fetch(`${gateway.url}${path}${query}`, { headers: { ...headers, "x-request-id": `scan-${i}` } });
    await response.arrayBuffer();
    statuses.push(response.status);
  }
  expect(statuses).toContain(200);
  expect(statuses).toContain(404);
  expect(statuses).toContain(502);
  // Secrets in an encoded query name and in a query without the gateway's route.
  await (await fetch(`${gateway.url}/api/y?API%5FKEY=${SECRETS.queryApiKey}&Token=${SECRETS.queryToken}`)).arrayBuffer();
  // Every authentication policy, with right and wrong credentials; the custom API key
  // header and query parameter are redacted because the policy reads secrets from them.
  const authCalls: [string, Record<string, string>, number][] = [
    ["/auth/key/a", { "x-tenant-key": AUTH_SECRETS.consumerKey }, 200],
    ["/auth/key/b", { "x-tenant-key": AUTH_SECRETS.wrongKey }, 401],
    [`/auth/key/c?tenant_key=${AUTH_SECRETS.customQueryKey}`, {}, 401],
    [`/auth/key/d?tenant_key=${AUTH_SECRETS.consumerKey}`, {}, 200],
    ["/auth/basic/a", { authorization: `Basic ${basicCredentials}` }, 200],
    ["/auth/basic/b", { authorization: `Basic ${btoa(`alice:${SECRETS.queryPassword}`)}` }, 401],
    ["/auth/jwt/a", { authorization: `Bearer ${jwtToken}` }, 200],
    ["/auth/jwt/b", { authorization: `Bearer ${jwtToken}x` }, 401],
  ];
  for (const [path, headers, status] of authCalls) {
    const response = await fetch(`${gateway.url}${path}`, { headers });
    await response.arrayBuffer();
    expect(response.status).toBe(status);
  }
  const digest = Bun.spawn(["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "--digest", "-u", `alice:${AUTH_SECRETS.digestPassword}`, `${gateway.url}/auth/digest/a`], { stdout: "pipe" });
  expect(await new Response(digest.stdout).text()).toBe("200");
  // Reloads (the audit log) by signal and admin API, one of them failing. The supervisor's
  // lines go to error.log here, so the signal's outcome is read from the audit log.
  const auditPath = join(gateway.dir, "audit.log");
  gateway.process.kill("SIGHUP");
  const deadline = performance.now() + 20_000;
  while (!(existsSync(auditPath) && readFileSync(auditPath, "utf8").includes('"result":"ok"')) && performance.now() < deadline) await Bun.sleep(20);
  const text = readFileSync(gateway.configPath, "utf8");
  gateway.writeConfig(text.replace("upstream: dead", "upstream: missing"));
  expect((await fetch(`${gateway.adminUrl}/reload`, { method: "POST" })).status).toBe(422);
  // A key pasted where its hash belongs: the refused reload's errors do not repeat it.
  gateway.writeConfig(text.replace(/key_hash: "sha256:[0-9a-f]+"/, `key_hash: "${AUTH_SECRETS.consumerKey}"`));
  expect((await fetch(`${gateway.adminUrl}/reload`, { method: "POST" })).status).toBe(422);
  gateway.writeConfig(text);
  expect((await fetch(`${gateway.adminUrl}/reload`, { method: "POST" })).status).toBe(200);
  expect(await gateway.stop()).toBe(0);

  const accessLog = readFileSync(join(gateway.dir, "access.log"), "utf8");
  const outputs: Record<string, string> = {
    "access.log": accessLog,
    "error.log": existsSync(join(gateway.dir, "error.log")) ? readFileSync(join(gateway.dir, "error.log"), "utf8") : "",
    "audit.log": readFileSync(join(gateway.dir, "audit.log"), "utf8"),
    "stdout+stderr": gateway.logs(),
  };
  const forbidden = [...Object.values(SECRETS), ...Object.values(AUTH_SECRETS), jwtToken, jwtToken.split(".")[2]!, basicCredentials, proxyCredentials];
  for (const [name, output] of Object.entries(outputs)) {
    for (const secret of forbidden) {
      if (output.includes(secret)) throw new Error(`${name} contains the secret ${secret}:\n${output.split("\n").filter((l) => l.includes(secret)).join("\n")}`);
    }
  }

  // The run was logged (the scan is not vacuous): every request, with redacted values in place.
  const lines = accessLog.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, any>);
  expect(lines.filter((l) => String(l.request_id).startsWith("scan-")).length).toBe(40);
  const first = lines.find((l) => l.request_id === "scan-0")!;
  expect(first.query).toBe("api_key=[redacted]&token=[redacted]&ACCESS_TOKEN=[redacted]&password=[redacted]&custom_param=[redacted]&page=0");
  expect(first.request_headers).toEqual({
    authorization: "[redacted]",
    "proxy-authorization": "[redacted]",
    cookie: "[redacted]",
    "x-api-key": "[redacted]",
    "x-custom-secret": "[redacted]",
    "user-agent": expect.any(String),
    accept: "text/plain",
  });
  expect(lines.find((l) => String(l.query).startsWith("API%5FKEY="))!.query).toBe("API%5FKEY=[redacted]&Token=[redacted]");
  expect(outputs["audit.log"]!.trimEnd().split("\n").length).toBe(4);
  const keyLine = lines.find((l) => l.path === "/auth/key/a")!;
  expect(keyLine.consumer).toBe("alice");
  expect(keyLine.request_headers["x-tenant-key"]).toBe("[redacted]");
  expect(lines.find((l) => l.path === "/auth/key/c")!.query).toBe("tenant_key=[redacted]");
  // The error log file got the gateway's own lines (debug level), each 502 among them with its request id.
  expect(outputs["error.log"]).toContain('"level":"debug"');
});

/**
 * `hmac-auth` through the built binary: signed requests with and without bodies reach the
 * upstream as the consumer; tampering, wrong keys, stale or future timestamps, replayed
 * nonces (on any of two workers) and malformed headers get 401 problem+json; large bodies
 * 413; no secret in logs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { validateConfig } from "../../../test/helpers/traffic.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";
import { signRequest } from "./signature.ts";

const SECRET = "s3cret-for-billing-hmac-0123456789";
const OTHER_SECRET = "other-secret-of-reports-9876543210";

let upstream: TestUpstream;
let gateway: Gateway;
let nonceCounter = 0;
const nonce = () => `nonce-${process.pid}-${++nonceCounter}-${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  upstream = startUpstream(async (request) => {
    const url = new URL(request.url);
    return Response.json({ path: url.pathname + url.search, body: await request.text(), headers: Object.fromEntries(request.headers) });
  });
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: billing
    roles: [billing]
    credentials:
      - { type: hmac, key_id: billing-1, secret: "\${BILLING_SECRET}" }
  - name: reports
    credentials:
      - { type: hmac, key_id: reports-1, secret: "${OTHER_SECRET}" }
upstreams:
  backend:
    targets: [${upstream.url}]
routes:
  - name: signed
    match: { paths: ["/orders", "/orders/*"] }
    upstream: backend
    policies:
      - type: hmac-auth
        config:
          required_headers: [host]
          clock_skew: 60s
          max_body_size: 64KiB
`,
    { workers: 2, env: { BILLING_SECRET: SECRET } },
  );
});
afterAll(async () => {
  await gateway.stop();
  upstream.stop();
});

interface SendOptions {
  method?: string;
  target?: string;
  body?: string;
  keyId?: string;
  secret?: string;
  created?: number;
  nonce?: string;
  headers?: Record<string, string>;
  signedHeaders?: string[];
  algorithm?: "HMAC-SHA256" | "HMAC-SHA512";
  /** Changes the request after signing. */
  tamper?: { body?: string; target?: string; header?: [string, string] };
}

function host(): string {
  return `127.0.0.1:${gateway.ports.port}`;
}

/** Signs and sends a request; returns the response and the Authorization value used. */
async function send(options: SendOptions = {}): Promise<{ response: Response; authorization: string }> {
  const method = options.method ?? (options.body !== undefined ? "POST" : "GET");
  const target = options.target ?? "/orders?id=7";
  const headers: Record<string, string> = { host: host(), ...options.headers };
  const signed = Object.fromEntries((options.signedHeaders ?? ["host", ...Object.keys(options.headers ?? {})]).map((name) => [name, headers[name]!]));
  const authorization = signRequest({
    algorithm: options.algorithm,
    keyId: options.keyId ?? "billing-1",
    secret: options.secret ?? SECRET,
    method,
    target,
    body: options.body,
    headers: signed,
    created: options.created ?? Math.floor(Date.now() / 1000),
    nonce: options.nonce ?? nonce(),
  });
  if (options.tamper?.header) headers[options.tamper.header[0]] = options.tamper.header[1];
  const response = await fetch(`${gateway.url}${options.tamper?.target ?? target}`, {
    method,
    headers: { ...headers, authorization },
    body: options.tamper?.body ?? options.body,
  });
  return { response, authorization };
}

describe("signed requests", () => {
  test("a signed GET reaches the upstream as the consumer, without the signature", async () => {
    const { response } = await send();
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { path: string; headers: Record<string, string> };
    expect(seen.path).toBe("/orders?id=7");
    expect(seen.headers["x-consumer-id"]).toBe("billing");
    expect(seen.headers["x-consumer-roles"]).toBe("billing");
    expect(seen.headers.authorization).toBeUndefined();
  });

  test("a signed POST keeps its body intact; HMAC-SHA512 and extra signed headers work", async () => {
    const body = JSON.stringify({ id: 1, note: "é€ ünïcode" });
    const { response } = await send({ body, headers: { "content-type": "application/json", "x-tenant": "acme" }, algorithm: "HMAC-SHA512" });
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { body: string };
    expect(seen.body).toBe(body);
  });

  test("each consumer signs with its own key", async () => {
    const { response } = await send({ keyId: "reports-1", secret: OTHER_SECRET });
    expect(((await response.json()) as { headers: Record<string, string> }).headers["x-consumer-id"]).toBe("reports");
  });
});

describe("refused requests", () => {
  test("no signature gets 401 with an HMAC challenge", async () => {
    const response = await fetch(`${gateway.url}/orders`);
    const body = await expectProblem(response, 401);
    expect(response.headers.get("www-authenticate")).toBe('HMAC realm="turnpike", algorithms="HMAC-SHA256 HMAC-SHA512", headers="host"');
    expect(body.detail).toContain("signed request");
  });

  test("a changed body, target or signed header, a wrong secret or an unknown key get the same 401", async () => {
    const cases: SendOptions[] = [
      { body: '{"amount":1}', tamper: { body: '{"amount":1000}' } },
      { tamper: { target: "/orders?id=8" } },
      { headers: { "x-tenant": "acme" }, tamper: { header: ["x-tenant", "evil"] } },
      { secret: "a-wrong-secret-of-enough-length" },
      { keyId: "nobody" },
      { keyId: "reports-1", secret: SECRET },
      { method: "DELETE", tamper: {} },
    ];
    for (const options of cases) {
      let { response } = await send(options);
      if (options.method === "DELETE") {
        // Signed as DELETE, sent as GET.
        const authorization = signRequest({ keyId: "billing-1", secret: SECRET, method: "DELETE", target: "/orders", headers: { host: host() }, created: Math.floor(Date.now() / 1000), nonce: nonce() });
        response = await fetch(`${gateway.url}/orders`, { headers: { authorization } });
      }
      const body = await expectProblem(response, 401);
      expect(body.detail).toBe("The credentials are not valid.");
    }
  });

  test("a replayed request is refused, also with a new timestamp", async () => {
    const fixed = nonce();
    const first = await send({ nonce: fixed });
    expect(first.response.status).toBe(200);
    const again = await fetch(`${gateway.url}/orders?id=7`, { headers: { authorization: first.authorization } });
    const body = await expectProblem(again, 401);
    expect(body.detail).toContain("nonce was already used");
    const resigned = await send({ nonce: fixed, created: Math.floor(Date.now() / 1000) - 5 });
    expect((await expectProblem(resigned.response, 401)).detail).toContain("nonce was already used");
    // Another key may use the same nonce.
    expect((await send({ nonce: fixed, keyId: "reports-1", secret: OTHER_SECRET })).response.status).toBe(200);
  });

  test("one signed request sent many times at once on new connections succeeds exactly once (any worker)", async () => {
    const authorization = signRequest({ keyId: "billing-1", secret: SECRET, method: "GET", target: "/orders", headers: { host: host() }, created: Math.floor(Date.now() / 1000), nonce: nonce() });
    const statuses = await Promise.all(
      Array.from({ length: 12 }, () => fetch(`${gateway.url}/orders`, { headers: { authorization, connection: "close" } }).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200).length).toBe(1);
    expect(statuses.filter((s) => s === 401).length).toBe(11);
  });

  test("stale and future timestamps are refused", async () => {
    const now = Math.floor(Date.now() / 1000);
    const stale = await expectProblem((await send({ created: now - 3600 })).response, 401);
    expect(stale.detail).toContain("older than the allowed 60 s");
    const future = await expectProblem((await send({ created: now + 3600 })).response, 401);
    expect(future.detail).toContain("later than the allowed 60 s");
  });

  test("malformed signature headers get a 401 that says what is wrong", async () => {
    const cases: [string, string][] = [
      ['HMAC-MD5 keyId="a", created="1", nonce="12345678", signature="AA=="', "not supported"],
      ["HMAC-SHA256 garbage", 'name="value" pairs'],
      ['HMAC-SHA256 keyId="billing-1", nonce="12345678", signature="AA=="', "created is missing"],
      ['HMAC-SHA256 keyId="billing-1", created="yesterday", nonce="12345678", signature="AA=="', "Unix time"],
      ['HMAC-SHA256 keyId="billing-1", created="1", nonce="short", signature="AA=="', "nonce must be"],
      ['HMAC-SHA256 keyId="billing-1", created="1", nonce="12345678", signature="not base64!"', "base64"],
      ['HMAC-SHA256 keyId="billing-1", keyId="x", created="1", nonce="12345678", signature="AA=="', "given twice"],
      ['HMAC-SHA256 keyId="billing-1", created="1", nonce="12345678", headers="bad(name", signature="AA=="', "not a header name"],
      [`HMAC-SHA256 keyId="billing-1", created="${Math.floor(Date.now() / 1000)}", nonce="12345678", headers="", signature="AA=="`, "must cover the header(s): host"],
      [`HMAC-SHA256 keyId="billing-1", created="${Math.floor(Date.now() / 1000)}", nonce="12345678", headers="host x-absent", signature="AA=="`, "x-absent is not in the request"],
    ];
    for (const [authorization, expected] of cases) {
      const response = await fetch(`${gateway.url}/orders`, { headers: { authorization } });
      const body = await expectProblem(response, 401);
      expect(String(body.detail)).toContain(expected);
    }
  });

  test("a body over max_body_size gets 413", async () => {
    const { response } = await send({ body: "x".repeat(70 * 1024) });
    await expectProblem(response, 413);
  });

  test("no secret or signature reaches the logs", async () => {
    const { authorization } = await send();
    const signature = authorization.match(/signature="([^"]+)"/)![1]!;
    await Bun.sleep(200);
    const logs = gateway.logs();
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toContain(OTHER_SECRET);
    expect(logs).not.toContain(signature);
    const config = await (await fetch(`${gateway.adminUrl}/config`)).text();
    expect(config).not.toContain(SECRET);
    expect(config).not.toContain(OTHER_SECRET);
  });
});

test("hmac-auth config errors name path and line", () => {
  const run = validateConfig(
    `listeners: [{ port: 8080 }]
upstreams: { echo: { type: mock } }
routes:
  - name: a
    upstream: echo
    policies:
      - type: hmac-auth
        config:
          clock_skew: 10h
`,
  );
  expect(run.lines.join("\n")).toContain("routes[0].policies[0].config.clock_skew: must be between 1s and 1h (line 9");
  expect(run.code).toBe(1);
});

/**
 * Identity provider failures in the gateway log, through the binary: a jwt route whose
 * JWKS URL points at a closed port answers 503 and logs one warning naming the URL,
 * however many requests fail; once the JWKS server answers, one info line says so.
 * The token never appears in any log line.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { basics, freePort, startGateway, type Gateway } from "./helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

setDefaultTimeout(60_000);

let upstream: TestUpstream;
let gateway: Gateway;
let jwksPort: number;
let token = "";
let jwks: { keys: unknown[] };

beforeAll(async () => {
  upstream = startUpstream(() => new Response("ok"));
  jwksPort = freePort();
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] };
  token = await new SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "RS256", kid: "k1" }).setExpirationTime("10m").sign(privateKey);
  gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
routes:
  - name: idp
    match: { paths: ["/api/*"] }
    upstream: backend
    policies:
      - type: jwt
        config:
          jwks_url: http://127.0.0.1:${jwksPort}/jwks.json?tenant=QuerySecret99
          jwks: { timeout: 2s, min_refresh_interval: 100ms }
`,
    { workers: 1 },
  );
});

afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
});

const warnings = () =>
  gateway
    .logs()
    .split("\n")
    .filter((line) => line.includes('"level":"warn"') && line.includes("identity provider unavailable"));

test("an unreachable JWKS is logged once as a warning naming the URL, its recovery once as info", async () => {
  // Several failing requests, spaced beyond the refresh floor so each one tries the URL again.
  for (let i = 0; i < 5; i++) {
    const response = await fetch(`${gateway.url}/api/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(503);
    await response.arrayBuffer();
    await Bun.sleep(150);
  }
  const warned = warnings();
  expect(warned).toHaveLength(1);
  const line = JSON.parse(warned[0]!);
  expect(line.url).toBe(`http://127.0.0.1:${jwksPort}/jwks.json`);
  expect(line.policy).toBe("routes.0.policies.0");

  // The provider comes up: the next request is served and one info line says so.
  const idp = Bun.serve({ hostname: "127.0.0.1", port: jwksPort, fetch: () => Response.json(jwks) });
  try {
    await Bun.sleep(150);
    const response = await fetch(`${gateway.url}/api/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const recovered = gateway.logs().split("\n").filter((l) => l.includes("identity provider available again"));
    expect(recovered).toHaveLength(1);
    expect(JSON.parse(recovered[0]!)).toMatchObject({ level: "info", url: `http://127.0.0.1:${jwksPort}/jwks.json`, policy: "routes.0.policies.0" });
  } finally {
    idp.stop(true);
  }
  expect(warnings()).toHaveLength(1);
  const logs = gateway.logs();
  expect(logs).not.toContain(token);
  expect(logs).not.toContain(token.split(".")[2]!);
  expect(logs).not.toContain("QuerySecret99");
});

/**
 * `digest-auth` through the built binary: curl --digest with SHA-256 and MD5, hand-made
 * answers to check replay (same nonce count refused, on any of two workers), stale
 * nonces, wrong passwords, unknown users, a wrong uri and malformed headers.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

// Real processes on a shared, busy machine: generous per-test time.
setDefaultTimeout(60_000);

const md5 = (text: string) => createHash("md5").update(text).digest("hex");
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
let upstream: TestUpstream;
let gateway: Gateway;

beforeAll(async () => {
  upstream = startUpstream((request) => Response.json({ consumer: request.headers.get("x-consumer-id"), authorization: request.headers.get("authorization") }));
  gateway = await startGateway(
    (ports) => `${basics(ports)}
consumers:
  - name: dana
    credentials: [{ type: digest, username: dana, password: "Circle Of Life" }]
  - name: eli
    credentials:
      - type: digest
        username: eli
        realm: short
        ha1_sha256: ${sha256("eli:short:pa55word")}
        ha1_md5: ${md5("eli:short:pa55word")}
upstreams:
  backend: { targets: ["${upstream.url}"] }
routes:
  - name: both
    match: { paths: ["/d/*"] }
    upstream: backend
    policies:
      - type: digest-auth
        config: { realm: "api@example.com" }
  - name: md5
    match: { paths: ["/md5/*"] }
    upstream: backend
    policies:
      - type: digest-auth
        config: { realm: "api@example.com", algorithms: [MD5] }
  - name: short
    match: { paths: ["/short/*"] }
    upstream: backend
    policies:
      - type: digest-auth
        config: { realm: short, nonce_lifetime: 1s, algorithms: [SHA-256] }
`,
    { workers: 2 },
  );
});
afterAll(async () => {
  await gateway?.stop();
  upstream?.stop();
});

async function curl(...args: string[]): Promise<string> {
  // Async: the upstream runs in this process and must keep answering while curl runs.
  const run = Bun.spawn(["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", ...args], { stdout: "pipe", stderr: "pipe" });
  return new Response(run.stdout).text();
}

/** The challenge parameters of the first Digest challenge offering `algorithm`. */
async function challenge(path: string, algorithm = "SHA-256"): Promise<Record<string, string>> {
  const response = await fetch(`${gateway.url}${path}`);
  await expectProblem(response, 401);
  const header = response.headers.get("www-authenticate")!;
  const offer = header.split(/,\s*(?=Digest )/).find((c) => c.includes(`algorithm=${algorithm}`))!;
  return Object.fromEntries([...offer.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]+))/g)].map((m) => [m[1]!, m[2] ?? m[3]!]));
}

function answer(params: Record<string, string>, user: string, password: string, uri: string, nc = "00000001", method = "GET", algorithm = "SHA-256"): string {
  const h = algorithm === "MD5" ? md5 : sha256;
  const cnonce = "0a4f113b";
  const ha1 = h(`${user}:${params.realm}:${password}`);
  const response = h(`${ha1}:${params.nonce}:${nc}:${cnonce}:auth:${h(`${method}:${uri}`)}`);
  return `Digest username="${user}", realm="${params.realm}", nonce="${params.nonce}", uri="${uri}", algorithm=${algorithm}, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${response}", opaque="${params.opaque}"`;
}

test("curl --digest gets in with the right password (both offered; SHA-256 only; MD5 only)", async () => {
  expect(await curl("--digest", "-u", "dana:Circle Of Life", `${gateway.url}/d/x?a=1`)).toBe("200");
  expect(await curl("--digest", "-u", "dana:Circle Of Life", `${gateway.url}/md5/x`)).toBe("200");
  expect(await curl("--digest", "-u", "eli:pa55word", `${gateway.url}/short/x`)).toBe("200");
  expect(await curl("--digest", "-u", "dana:wrong", `${gateway.url}/d/x`)).toBe("401");
  expect(await curl("--digest", "-u", "nobody:Circle Of Life", `${gateway.url}/d/x`)).toBe("401");
});

test("the challenge offers SHA-256 then MD5 with qop=auth; the consumer is forwarded, the header is not", async () => {
  const response = await fetch(`${gateway.url}/d/x`);
  const header = response.headers.get("www-authenticate")!;
  expect(header).toMatch(/^Digest realm="api@example.com", qop="auth", algorithm=SHA-256, nonce="[\w-]{43}", opaque="\w+", charset=UTF-8, Digest realm="api@example.com", qop="auth", algorithm=MD5, /);
  for (const algorithm of ["SHA-256", "MD5"]) {
    const params = await challenge("/d/y", algorithm);
    const ok = await fetch(`${gateway.url}/d/y`, { headers: { authorization: answer(params, "dana", "Circle Of Life", "/d/y", "00000001", "GET", algorithm) } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ consumer: "dana", authorization: null });
  }
});

test("a replayed nonce count is refused, on either worker; the next count passes", async () => {
  const params = await challenge("/d/r");
  const first = answer(params, "dana", "Circle Of Life", "/d/r");
  expect((await fetch(`${gateway.url}/d/r`, { headers: { authorization: first } })).status).toBe(200);
  for (let i = 0; i < 6; i++) {
    // Fresh connections, so the replays reach both workers.
    await expectProblem(await fetch(`${gateway.url}/d/r`, { headers: { authorization: first, connection: "close" } }), 401);
  }
  const second = answer(params, "dana", "Circle Of Life", "/d/r", "00000002");
  expect((await fetch(`${gateway.url}/d/r`, { headers: { authorization: second } })).status).toBe(200);
});

test("an expired nonce gets stale=true, a forged one and a wrong uri or method are refused", async () => {
  const params = await challenge("/short/s");
  await Bun.sleep(1_500);
  const stale = await fetch(`${gateway.url}/short/s`, { headers: { authorization: answer(params, "eli", "pa55word", "/short/s") } });
  await expectProblem(stale, 401);
  expect(stale.headers.get("www-authenticate")).toContain("stale=true");
  const fresh = await challenge("/d/u");
  const forged = { ...fresh, nonce: `${fresh.nonce!.slice(0, 40)}AAA` };
  await expectProblem(await fetch(`${gateway.url}/d/u`, { headers: { authorization: answer(forged, "dana", "Circle Of Life", "/d/u") } }), 401);
  await expectProblem(await fetch(`${gateway.url}/d/u`, { headers: { authorization: answer(fresh, "dana", "Circle Of Life", "/d/other") } }), 401);
  await expectProblem(await fetch(`${gateway.url}/d/u`, { method: "DELETE", headers: { authorization: answer(fresh, "dana", "Circle Of Life", "/d/u") } }), 401);
});

test("malformed headers get 401 problem+json", async () => {
  const params = await challenge("/d/m");
  const good = answer(params, "dana", "Circle Of Life", "/d/m");
  for (const authorization of [
    "Digest",
    "Digest ",
    'Digest username="dana',
    "Digest username=dana, username=dana",
    good.replace("qop=auth", "qop=auth-int"),
    good.replace(/nc=\w+/, "nc=zz"),
    good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
    good.replace(/realm="[^"]+"/, 'realm="other"'),
    good.replace(/, cnonce="\w+"/, ""),
    `${good}, ${"x".repeat(5000)}=1`,
    "Basic ZGFuYTpDaXJjbGUgT2YgTGlmZQ==",
  ]) {
    await expectProblem(await fetch(`${gateway.url}/d/m`, { headers: { authorization } }), 401);
  }
  expect((await fetch(`${gateway.url}/d/m`, { headers: { authorization: good } })).status).toBe(200);
});
